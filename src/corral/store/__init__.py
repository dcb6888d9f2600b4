"""Where corral keeps jobs, allocations, events and settings.

:class:`Store` is the interface; :class:`SqliteStore` is what the daemon uses and
:class:`MemoryStore` is a drop-in for tests. Both pass the same contract tests.
:func:`open_store` opens the one a daemon uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Event, Finish, JobUsage, Requeue, Store, UsageRow
from .memory import MemoryStore
from .sqlite import SCHEMA_VERSION, SqliteStore

if TYPE_CHECKING:
    from ..paths import Paths


def open_store(paths: "Paths") -> Store:
    """The daemon's store: the SQLite database in its home."""
    return SqliteStore(paths.db)


__all__ = ["Event", "Finish", "JobUsage", "MemoryStore", "Requeue", "SCHEMA_VERSION", "SqliteStore", "Store",
           "UsageRow", "open_store"]
