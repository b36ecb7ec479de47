"""riskgate's version (read by the package metadata, the CLI and the API)."""

__version__ = "0.2.0"
