"""Management commands of the campaigns app."""
