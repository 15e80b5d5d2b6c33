"""The one exception the embedded stack raises to its callers.

It lives in its own module so that every service module can raise it without importing the
launcher; `citywatch.stack.launcher` re-exports it, and that is where callers import it from.
"""

from __future__ import annotations


class StackError(Exception):
    """The embedded stack could not be started, inspected or stopped.

    The message says which service failed and what the operator can do about it (it often
    ends with the tail of that service's log).
    """
