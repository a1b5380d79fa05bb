"""Template filters of the push console."""
