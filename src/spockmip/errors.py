"""The project's user errors: failures explained by their message alone."""


class SpockmipError(Exception):
    """A failure the user can fix; the message names the file, key or option, so no traceback is shown."""


class SettingsError(SpockmipError, ValueError):
    """A config key or command-line option with a wrong value; the message starts with the key."""
