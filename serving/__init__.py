"""yoloforge serving (see shared DESIGN.md for what this package owns)."""
