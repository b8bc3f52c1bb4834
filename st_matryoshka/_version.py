"""The package version, in one place (``pyproject.toml`` reads it; so do the metadata and the exported modules)."""

__version__ = "0.1.0"
