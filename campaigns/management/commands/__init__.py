"""The campaigns app's manage.py commands."""
