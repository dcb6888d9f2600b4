"""Where corral keeps its state: ``$CORRAL_HOME`` (default ``$XDG_STATE_HOME/corral``,
i.e. ``~/.local/state/corral``). Light on purpose (plain strings, no pathlib): the CLI
imports it on every call."""

from __future__ import annotations

import os

#: Unix socket paths are limited to 107 bytes by the kernel (sun_path).
MAX_SOCKET_PATH = 107


class Paths:
    def __init__(self, home: str | None = None):
        if home is None:
            home = os.environ.get("CORRAL_HOME")
        if not home:
            state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
            home = os.path.join(state, "corral")
        self.home = os.path.abspath(os.fspath(home))
        self.socket = os.path.join(self.home, "corral.sock")
        self.db = os.path.join(self.home, "corral.db")
        self.lock = os.path.join(self.home, "daemon.lock")
        self.log = os.path.join(self.home, "daemon.log")
        self.jobs = os.path.join(self.home, "jobs")
        self.config = os.path.join(self.home, "config.yaml")

    def ensure(self) -> None:
        os.makedirs(self.home, mode=0o700, exist_ok=True)
