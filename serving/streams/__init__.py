"""Video streams with tracking: readers per source, one cross-stream batcher on the run's engine, a tracker per
stream, outputs and metrics per stream (docs/streams.md)."""
