"""yoloforge engines (see shared DESIGN.md for what this package owns)."""
