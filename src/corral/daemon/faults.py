"""How the daemon's periodic work reports a failure: a store or disk fault (full,
read-only, locked by another process) is expected and passes, so it is one line; any
other exception is a bug and gets its traceback."""

from __future__ import annotations

import logging
import sqlite3


#: Writes the store refused since the daemon started, by what was being done (the
#: ``corral_store_errors_total`` metric).
store_errors: dict[str, int] = {}


def count(operation: str) -> None:
    store_errors[operation] = store_errors.get(operation, 0) + 1


def log_failure(log: logging.Logger, what: str) -> None:
    """Call from an ``except`` block: ``what`` failed because of the exception at hand."""
    import sys

    exc = sys.exc_info()[1]
    if isinstance(exc, (sqlite3.OperationalError, sqlite3.DatabaseError, OSError)):
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        count(what)
        log.warning("%s failed (%s); trying again later", what, text)
    else:
        log.exception("%s failed", what)
