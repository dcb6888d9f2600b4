"""Where corral keeps jobs, allocations, events and settings.

:class:`Store` is the interface; :class:`SqliteStore` is what the daemon uses and
:class:`MemoryStore` is a drop-in for tests. Both pass the same contract tests.
"""

from .base import Event, Finish, JobUsage, Store, UsageRow
from .memory import MemoryStore
from .sqlite import SCHEMA_VERSION, SqliteStore

__all__ = ["Event", "Finish", "JobUsage", "MemoryStore", "SCHEMA_VERSION", "SqliteStore", "Store", "UsageRow"]
