"""User-facing errors.

Anything raised as :class:`X3DSearchError` is bad input or an unrecoverable
state the user can fix; the CLI prints its message as one line and exits 2.
"""


class X3DSearchError(Exception):
    """An error caused by the user's input, reported without a traceback."""


class ConfigError(X3DSearchError, ValueError):
    """A configuration value (factors, budget, space) is invalid."""
