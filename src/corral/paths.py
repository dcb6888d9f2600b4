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
        #: The home was named (``--home``, ``CORRAL_HOME``), not the default: only
        #: ``corral up`` creates such a home (a typo must not start a second daemon).
        self.explicit = bool(home)
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

    def problem(self) -> str | None:
        """Why this home cannot hold a daemon's socket (a path too long for a Unix
        socket, a file where the directory should be), or None."""
        size = len(os.fsencode(self.socket))
        if size > MAX_SOCKET_PATH:
            return (f"corral home path too long for a Unix socket: {self.socket} is {size} bytes "
                    f"(at most {MAX_SOCKET_PATH}); use a shorter --home or CORRAL_HOME")
        if os.path.exists(self.home) and not os.path.isdir(self.home):
            return f"corral home {self.home} is not a directory; give --home or CORRAL_HOME a directory"
        return None

    def ensure(self) -> None:
        os.makedirs(self.home, mode=0o700, exist_ok=True)
