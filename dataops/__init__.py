"""dataops."""
