"""zkproofs package."""
