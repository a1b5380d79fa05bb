"""People: users, roles, sessions and two-factor sign-in (DESIGN §6)."""
