"""chatd: real-time secure messaging for health and social-care professionals."""

__version__ = "0.1.0"
