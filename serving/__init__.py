"""yoloforge serving: the Ray Serve preview, the bundle exporter, the Go server's source and video streams
(docs/architecture.md)."""
