"""The policy interface."""

from __future__ import annotations

from typing import Protocol

from ..types import PendingJob


class Policy(Protocol):
    #: Name used in the config file and on the command line.
    name: str
    #: True: the first job that does not fit blocks all jobs behind it.
    strict: bool

    def order_key(self, job: PendingJob) -> tuple:
        """Sort key: smaller starts first. Must be total and deterministic."""
        ...
