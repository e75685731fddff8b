"""The exceptions a user can act on, shared by every command and workflow stage: the one family, in one
module.

A :class:`SpockmipError` is a failure the user can fix: its message alone explains it, starting with the
file, config key or command-line option it concerns, so the command line and the workflow print that one
line and exit non-zero instead of showing a traceback. Anything else that escapes is a bug in spockmip and
keeps its traceback. Nothing here imports torch, so light stages can catch these cheaply.
"""

from __future__ import annotations


class SpockmipError(Exception):
    """A failure the user can fix; the message alone explains it (it names the file, key or option it
    concerns), so no traceback is shown."""


class SettingsError(SpockmipError, ValueError):
    """A config key or command-line option has a wrong value; the message starts with the key or option.

    Also a ``ValueError``, so callers that validate settings with ``except ValueError`` still catch it.
    """


class DataError(SpockmipError, ValueError):
    """An input volume is unusable; the message names the file and what is wrong with it."""


class OutputError(SpockmipError, ValueError):
    """An output location cannot be written; raised before any work, so nothing is computed in vain."""


class RunError(SpockmipError, RuntimeError):
    """The run cannot go ahead (its folder is in use); the message says which folder and why."""


class WeightsError(SpockmipError, ValueError):
    """A weights source cannot be used; the message names it and says why."""


class DeviceError(SpockmipError):
    """A requested device is unknown or not present on this machine; the message starts with the option."""


class DownloadError(SpockmipError, RuntimeError):
    """The release could not be fetched; the message says why and what to do, in one line."""


class MetricError(SpockmipError, RuntimeError):
    """A metric cannot be computed: its optional package is missing, or the package returned a result
    that fails its consistency check (most often for lack of memory); the message says which and what
    to do."""
