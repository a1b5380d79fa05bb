"""Forms, one module per console area."""
