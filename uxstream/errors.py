"""Errors shown to the user as one clear line (no traceback)."""


class UserError(Exception):
    """Something the user can fix: the message says what and how."""
