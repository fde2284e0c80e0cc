"""ecoshare: governed, audited sharing of live business events between ecosystem partners."""

__version__ = "0.1.0"
