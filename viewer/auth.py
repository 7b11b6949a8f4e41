"""Transitional: moved to anjeon.viewer.console.auth; this name goes once anjeon/cli_viewer.py imports the new one."""

from anjeon.viewer.console.auth import UsersFileError, add_user, hash_password, is_loopback, load_users

__all__ = ["UsersFileError", "add_user", "hash_password", "is_loopback", "load_users"]
