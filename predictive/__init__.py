"""predictive package."""
