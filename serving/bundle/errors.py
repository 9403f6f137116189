"""The bundle's one error type."""


class BundleError(RuntimeError):
    """The bundle cannot be written; the message says why and what to do."""
