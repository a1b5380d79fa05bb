"""Forms about people: users and their roles, the two-factor code."""
