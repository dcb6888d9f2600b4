"""Running a job as its submitter (a root daemon in system mode), in a clean environment."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

from ..environment import KEPT_FROM_SUBMITTER

#: A job that runs as its submitter (system mode) gets this PATH, not the daemon's.
USER_PATH = "/usr/local/bin:/usr/bin:/bin"


@dataclass(frozen=True)
class RunAs:
    """The user a job runs as when the daemon (root) must switch to its submitter."""

    uid: int
    gid: int
    user: str
    home: str
    shell: str


def run_as(uid: int | None, gid: int | None, user: str = "", *, euid: int | None = None) -> RunAs | None:
    """Whom a job with owner ``uid``/``gid`` runs as, or None when it runs as the daemon's
    own user: the daemon is not root, or the job is root's (or its owner is unknown).
    A uid without a passwd entry still runs as that uid (HOME ``/``)."""
    import pwd

    euid = os.geteuid() if euid is None else euid
    if uid is None or euid != 0 or uid == euid:
        return None
    try:
        pw = pwd.getpwuid(uid)
    except KeyError:
        return RunAs(uid, gid if gid is not None else uid, user or str(uid), "/", "/bin/sh")
    return RunAs(uid, gid if gid is not None else pw.pw_gid, pw.pw_name, pw.pw_dir or "/", pw.pw_shell or "/bin/sh")


def user_environment(who: RunAs, base_env: Mapping[str, str]) -> dict[str, str]:
    """A clean environment for a job run as ``who`` (like ``su -l`` would give): HOME,
    USER, LOGNAME, SHELL from the passwd entry, a standard PATH, and LANG if the
    submitter had it. The job's own variables (spec env, CUDA_*, CORRAL_*, OMP_*) are
    added by :func:`job_environment` on top."""
    env = {"HOME": who.home, "USER": who.user, "LOGNAME": who.user, "SHELL": who.shell, "PATH": USER_PATH}
    env.update({k: base_env[k] for k in KEPT_FROM_SUBMITTER if k in base_env})
    return env
