"""margin package."""
