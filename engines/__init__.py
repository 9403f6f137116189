"""yoloforge engines: the Engine protocol, one module per inference backend, pre/post-processing and the
selection (docs/architecture.md)."""
