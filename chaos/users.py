"""The test users of a shared machine (system mode), for the chaos attacks and for
``tests/integration/test_cli_users.py``: created idempotently, left in place.

Groups ``corraltest`` (may use the socket), ``corraltestadm`` (admins) and
``corraltestout``; users ``crlalice`` and ``crlbob`` (socket group), ``crladmin`` (socket
group + admins) and ``crlout`` (neither). Stdlib only.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
from pathlib import Path

GROUP, ADMIN_GROUP, OTHER_GROUP = "corraltest", "corraltestadm", "corraltestout"
ALICE, BOB, ADMIN, OUTSIDER = "crlalice", "crlbob", "crladmin", "crlout"
#: The checkout's ``src`` (what a test user's python imports corral from).
SRC = str(Path(__file__).resolve().parent.parent / "src")


class Unavailable(Exception):
    """The users cannot be made or cannot run the CLI (the message says why)."""


def sh(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=120)


def _exists(lookup, name: str) -> bool:
    try:
        lookup(name)
        return True
    except KeyError:
        return False


def ensure_users() -> None:
    """Create the groups and users unless they exist; raises :class:`Unavailable`."""
    if os.geteuid() != 0:
        raise Unavailable("needs root to create the test users (useradd) and run a system-mode daemon")
    if shutil.which("useradd") is None and shutil.which("apt-get") is not None:
        sh("apt-get", "install", "-y", "-qq", "passwd")
    for tool in ("useradd", "groupadd", "usermod", "runuser"):
        if shutil.which(tool) is None:
            raise Unavailable(f"{tool} is missing (apt-get install passwd util-linux)")
    for group in (GROUP, ADMIN_GROUP, OTHER_GROUP):
        if not _exists(grp.getgrnam, group):
            res = sh("groupadd", group)
            if res.returncode != 0 and not _exists(grp.getgrnam, group):
                raise Unavailable(f"cannot create group {group}: {res.stderr.strip()}")
    for name, primary, extra in ((ALICE, GROUP, None), (BOB, GROUP, None), (ADMIN, GROUP, ADMIN_GROUP),
                                 (OUTSIDER, OTHER_GROUP, None)):
        if not _exists(pwd.getpwnam, name):
            res = sh("useradd", "-M", "-N", "-g", primary, "-s", "/bin/sh", name)
            if res.returncode != 0 and not _exists(pwd.getpwnam, name):
                raise Unavailable(f"cannot create user {name}: {res.stderr.strip()}")
        if extra and name not in grp.getgrnam(extra).gr_mem:
            sh("usermod", "-a", "-G", extra, name)


def system_python() -> str | None:
    """A python the test users can run (the venv's may live under /root)."""
    for python in dict.fromkeys(p for p in ("/usr/bin/python3", shutil.which("python3")) if p):
        if sh("runuser", "-u", ALICE, "--", python, "-c",
              "import sys; sys.exit(sys.version_info < (3, 11))").returncode == 0:
            return python
    return None


def user_cli(corral: list[str]) -> tuple[list[str], dict[str, str]]:
    """How the test users can run this checkout's CLI: ``corral`` (the venv's script) if
    they can execute it, else a system python >= 3.11 on the source tree (the CLI is
    stdlib only). Raises :class:`Unavailable` when neither works."""
    probes = [(list(corral), {})]
    python = system_python()
    if python:
        probes.append(([python, "-m", "corral.cli.main"], {"PYTHONPATH": SRC}))
    for argv, extra in probes:
        env = [f"{k}={v}" for k, v in extra.items()]
        if sh("runuser", "-u", ALICE, "--", "env", "PYTHONDONTWRITEBYTECODE=1", *env, *argv,
              "--version").returncode == 0:
            return argv, extra
    raise Unavailable(f"user {ALICE} can run neither {corral[0]} nor a python >= 3.11 with {SRC} "
                      "(the checkout must be readable and executable by other users)")


def uid_of_pid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Uid:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None
