"""yoloforge ga (see shared DESIGN.md for what this package owns)."""
