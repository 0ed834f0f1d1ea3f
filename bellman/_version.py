"""bellman's version, in a module of its own so that bellman's modules can read it without
importing the package's public API (`bellman/__init__.py`)."""

__version__ = "0.1.0"
