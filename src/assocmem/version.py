"""The package version, in one place: ``pyproject.toml`` reads it, and the package face, the command line and
every results file take it from here."""

__version__ = "0.1.0"
