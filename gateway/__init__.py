"""Callguard's async gateway: websockets per tab, call intake, CRM lookups, paint push."""

__version__ = "0.1.0"
