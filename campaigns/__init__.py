"""The campaigns app: templates, target lists, campaigns, the send pipeline, history."""
