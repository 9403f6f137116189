"""What every layer shares: the user-facing errors and the run directory."""
