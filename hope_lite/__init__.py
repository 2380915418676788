"""hope_lite: Nested Learning, HOPE, Titans memory, CMS and M3, small enough to read and run."""

__version__ = "0.1.0"
