"""Who may do what through the daemon's socket.

Callers are identified by the kernel, not by passwords: the daemon's protocol reads
``SO_PEERCRED`` on the Unix socket (see :func:`corral.daemon.server.peer_protocol`) and
the API turns it into a :class:`Principal` (:mod:`corral.daemon.api.principal`); no
header or address a client sends can change it.

Two modes (config ``mode``; ``auto`` = ``system`` when the daemon runs as root):

* ``user``: the daemon belongs to one user; its socket is 0600, so only that user (and
  root) can connect, and both may do everything.
* ``system``: the daemon runs as root; with ``socket_group`` its socket is
  ``root:GROUP 0660`` (members may connect), without it 0600 (root only). Each job runs
  as the user who submitted it. Anyone who can connect may submit and read the queue
  (``ps``, ``show``, like ``squeue``); cancelling, changing and reading the logs of a job
  is for its owner (same uid) and admins: root, the daemon's own user and members of
  ``admin_group``. Shutting the daemon down and pruning are for admins.

Acting on someone else's job raises :class:`~corral.errors.PermissionDenied` (HTTP 403)
before anything changes; a batch is checked as a whole first.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from ..errors import CorralError, PermissionDenied, ValidationError
from ..executors.environment import KEPT_FROM_SUBMITTER

if TYPE_CHECKING:
    from ..config import Config
    from ..job import Job

USER = "user"
SYSTEM = "system"
# KEPT_FROM_SUBMITTER (executors.environment): what the daemon keeps of a non-root
# submitter's environment in system mode; their jobs get a clean one from passwd.

#: ``(user name, primary gid) -> every gid the user is in`` (``os.getgrouplist``).
GroupLookup = Callable[[str, int], Iterable[int]]


@dataclass(frozen=True)
class Principal:
    """Whoever is on the other end of the socket, as the kernel says (SO_PEERCRED):
    uid, primary gid, user name and pid. ``uid`` None: unknown (the request did not
    come through the daemon's socket, e.g. an in-process test client)."""

    uid: int | None
    gid: int | None = None
    name: str = ""
    pid: int | None = None

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        return f"uid {self.uid}" if self.uid is not None else "an unknown caller"


@dataclass(frozen=True)
class Access:
    """The daemon's access rules, resolved once at start (see :func:`access_from_config`)."""

    mode: str = USER
    daemon_uid: int = field(default_factory=os.geteuid)
    socket_group: str | None = None
    socket_gid: int | None = None
    admin_group: str | None = None
    admin_gid: int | None = None

    @property
    def system(self) -> bool:
        return self.mode == SYSTEM

    def socket_permissions(self) -> tuple[int, int | None]:
        """(mode bits, group id or None) for the socket file."""
        if self.system and self.socket_gid is not None:
            return 0o660, self.socket_gid
        return 0o600, None

    def describe(self) -> str:
        """One line for ``corral nodes`` and the daemon's log."""
        if not self.system:
            return f"user mode: one user ({user_name(self.daemon_uid)}); socket 0600"
        admins = "root" + (f" and group {self.admin_group}" if self.admin_group else "")
        if self.socket_group:
            who = f"socket root:{self.socket_group} 0660 (members of {self.socket_group} may submit)"
        else:
            who = "socket 0600: root only (set socket_group to let users submit)"
        return f"system mode: jobs run as their submitters; {who}; admins: {admins}"

    def to_dict(self) -> dict[str, Any]:
        mode, _ = self.socket_permissions()
        return {"mode": self.mode, "socket_group": self.socket_group, "socket_mode": f"{mode:04o}",
                "admin_group": self.admin_group, "description": self.describe()}


# -- configuration ---------------------------------------------------------------------------

def resolve_mode(mode: str, euid: int) -> str:
    """``auto`` -> system as root, else user. ``system`` needs root."""
    if mode == "auto":
        return SYSTEM if euid == 0 else USER
    if mode == SYSTEM and euid != 0:
        raise CorralError(f"mode: system needs the daemon to run as root (it runs as {user_name(euid)}); "
                          "use mode: user or start it as root")
    return mode


def group_id(name: str, field_name: str, source: str = "config.yaml") -> int:
    """The gid of group ``name``; an unknown group is a one-line error naming the field."""
    import grp

    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise ValidationError(field_name, name, "no such group on this machine",
                              detail=f"{source}: invalid value for {field_name}") from None


def access_from_config(config: "Config", *, euid: int | None = None, source: str = "config.yaml") -> Access:
    """The rules for a daemon started with ``config`` (raises on unknown groups)."""
    euid = os.geteuid() if euid is None else euid
    mode = resolve_mode(config.mode, euid)
    socket_gid = group_id(config.socket_group, "socket_group", source) if config.socket_group else None
    admin_gid = group_id(config.admin_group, "admin_group", source) if config.admin_group else None
    if mode != SYSTEM:
        # One user's daemon: the socket stays 0600 and that user may do everything.
        return Access(mode=mode, daemon_uid=euid)
    return Access(mode=mode, daemon_uid=euid, socket_group=config.socket_group, socket_gid=socket_gid,
                  admin_group=config.admin_group, admin_gid=admin_gid)


# -- the rules -------------------------------------------------------------------------------

def groups_of(name: str, gid: int) -> list[int]:
    """Every group ``name`` is in, primary ``gid`` included (empty if it cannot be told)."""
    try:
        return list(os.getgrouplist(name, gid))
    except (OSError, TypeError, ValueError):
        return [gid]


def is_admin(caller: Principal, access: Access, groups: GroupLookup = groups_of) -> bool:
    """Root, the daemon's own user, or a member of ``admin_group``. An unknown caller is
    the daemon's user in user mode (nobody else can reach its socket), nobody otherwise."""
    if caller.uid is None:
        return not access.system
    if caller.uid == 0 or caller.uid == access.daemon_uid:
        return True
    if access.admin_gid is None:
        return False
    if caller.gid == access.admin_gid:
        return True
    name = caller.name or user_name(caller.uid)
    return access.admin_gid in set(groups(name, caller.gid if caller.gid is not None else -1))


def owns(caller: Principal, job: "Job") -> bool:
    """Same uid (jobs recorded before uids were: same user name)."""
    if caller.uid is None:
        return False
    if job.uid is not None:
        return job.uid == caller.uid
    return bool(job.user) and job.user == (caller.name or user_name(caller.uid))


def may_act(caller: Principal, job: "Job", access: Access, groups: GroupLookup = groups_of) -> bool:
    """May ``caller`` cancel, change or read the logs of ``job``?"""
    return owns(caller, job) or is_admin(caller, access, groups)


def refusal(job: "Job", caller: Principal) -> str:
    """``permission denied: job 12 belongs to alice (you are bob)``."""
    owner = job.user or (f"uid {job.uid}" if job.uid is not None else "another user")
    return f"permission denied: job {job.id} belongs to {owner} (you are {caller.label})"


def check_jobs(caller: Principal, jobs: list["Job"], access: Access, done: str = "cancelled",
               groups: GroupLookup = groups_of) -> None:
    """All or nothing: raise :class:`PermissionDenied` (one line per job refused) if the
    caller may not act on any of ``jobs``; ``done`` says what did not happen to the rest."""
    refused = [refusal(job, caller) for job in jobs if not owns(caller, job)]
    if not refused or is_admin(caller, access, groups):
        return
    if len(jobs) > 1:
        refused.append(f"no job was {done} ({len(refused)} of {len(jobs)} are not yours)")
    raise PermissionDenied(refused)


def check_submitter(caller: Principal, access: Access) -> None:
    """In system mode a job runs as its submitter: one whose uid is unknown (no peer
    credentials) may not submit, rather than have its jobs run as root."""
    if access.system and caller.uid is None:
        raise PermissionDenied("permission denied: cannot tell who you are (no peer credentials on the socket)")


def submitter_env(caller: Principal, access: Access, base_env: Mapping[str, str]) -> dict[str, str]:
    """What the daemon keeps of a submitter's environment: all of it from root or the
    daemon's own user; in system mode only :data:`KEPT_FROM_SUBMITTER` from anyone else
    (their jobs get a clean environment of their own)."""
    if not access.system or caller.uid in (0, access.daemon_uid):
        return dict(base_env)
    return {k: base_env[k] for k in KEPT_FROM_SUBMITTER if k in base_env}


def require_owner(caller: Principal, access: Access, job: "Job", done: str = "changed",
                  groups: GroupLookup = groups_of) -> None:
    """Raise :class:`PermissionDenied` (403) unless ``caller`` owns ``job`` or is an admin.
    For endpoints that cancel, change or read a job's private data."""
    check_jobs(caller, [job], access, done, groups)


def require_admin(caller: Principal, access: Access, what: str, groups: GroupLookup = groups_of) -> None:
    """Raise :class:`PermissionDenied` unless ``caller`` is an admin."""
    if not is_admin(caller, access, groups):
        raise PermissionDenied(f"permission denied: only admins may {what} (you are {caller.label})")


def user_name(uid: int) -> str:
    """The user name of ``uid`` (the number itself when passwd does not know it)."""
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


__all__ = ["Access", "Principal", "SYSTEM", "USER", "access_from_config", "check_jobs", "check_submitter",
           "group_id", "groups_of", "is_admin", "may_act", "owns", "refusal", "require_admin", "require_owner",
           "resolve_mode", "submitter_env", "user_name"]


def dir_usable_as(path: str, uid: int | None, gid: int | None, name: str = "") -> bool:
    """Whether ``path`` is a directory user ``uid`` can enter -- checked with that user's
    rights (a child process that becomes the user), so that a daemon running as root does
    not tell anyone which directories exist where only root may look. The daemon's own
    user (or an unknown one) is checked directly."""
    import os

    if uid is None or uid == os.geteuid():
        return os.path.isdir(path)
    groups = [gid] if gid is not None else []
    if name and not name.isdigit() and gid is not None:
        try:
            groups = os.getgrouplist(name, gid)
        except (KeyError, OSError):
            pass
    pid = os.fork()
    if pid == 0:        # the child: become the user, look, exit with the answer
        code = 1
        try:
            os.setgroups(groups)
            if gid is not None:
                os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
            code = 0 if os.path.isdir(path) and os.access(path, os.X_OK) else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def with_priorities(specs: list, priorities: Any, caller: Principal, access: Access,
                    groups: GroupLookup = groups_of) -> list:
    """Each spec with its priority class resolved (value, may it preempt), after checking
    that the caller may use it: admins anything, other users in system mode only the
    classes open to them and raw priorities up to their highest (0 without classes)."""
    from dataclasses import replace

    out = []
    check = access.system and not is_admin(caller, access, groups)
    names: list[str] = []
    if check:
        import grp

        name = caller.name or user_name(caller.uid)
        for gid in groups(name, caller.gid if caller.gid is not None else -1):
            try:
                names.append(grp.getgrgid(gid).gr_name)
            except KeyError:
                continue
    for spec in specs:
        if not spec.priority_class and spec.priority == 0:
            given = priorities.default_for(spec.queue)     # the queue's (or the global) default class
            if given is not None:
                out.append(replace(spec, priority_class=given.name, priority=given.value, preempts=given.preempt))
                continue                                   # policy's choice: never refused
        if spec.priority_class:
            pc = priorities.resolve(spec.priority_class)
            spec = replace(spec, priority=pc.value, preempts=pc.preempt)
        if check:
            priorities.check(caller.label, names, value=spec.priority, name=spec.priority_class, queue=spec.queue)
            if not spec.preemptible:        # else anyone could shield their jobs from every preemption
                raise PermissionDenied(f"permission denied: --no-preempt (preemptible: false) is for admins on a "
                                       f"shared machine ({caller.label} is not one); a priority class protects a "
                                       "job instead")
        out.append(spec)
    return out

