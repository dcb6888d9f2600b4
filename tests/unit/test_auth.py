"""Who may do what on the daemon's socket (corral.daemon.auth): pure rules, no daemon."""

from __future__ import annotations

import grp
import os

import pytest

from corral.config import Config
from corral.daemon import auth
from corral.daemon.auth import Access, Principal
from corral.errors import CorralError, PermissionDenied, ValidationError
from corral.executors.local.users import RunAs, run_as, user_environment
from corral.job import Job

ALICE = Principal(1001, 1001, "alice")
BOB = Principal(1002, 1001, "bob")
CAROL = Principal(1003, 1001, "carol")         # in the admin group (supplementary)
ROOT = Principal(0, 0, "root")
SYSTEM = Access(mode=auth.SYSTEM, daemon_uid=0, socket_group="corral", socket_gid=1001,
                admin_group="corral-admin", admin_gid=2000)


def groups(name: str, gid: int) -> list[int]:
    return {"carol": [gid, 2000]}.get(name, [gid])


def job(job_id: int = 12, uid: int | None = 1001, user: str = "alice") -> Job:
    return Job(id=job_id, spec=None, user=user, uid=uid, gid=1001)


def test_owner_and_admins_may_act():
    assert auth.may_act(ALICE, job(), SYSTEM, groups)
    assert not auth.may_act(BOB, job(), SYSTEM, groups)
    assert auth.may_act(ROOT, job(), SYSTEM, groups)
    assert auth.may_act(CAROL, job(), SYSTEM, groups)                       # supplementary admin group
    assert auth.may_act(Principal(1005, 2000, "dave"), job(), SYSTEM, groups)  # primary admin group
    assert not auth.may_act(CAROL, job(), Access(mode=auth.SYSTEM, daemon_uid=0), groups)  # no admin_group


def test_daemon_user_is_admin_and_unknown_callers():
    mine = Access(mode=auth.USER, daemon_uid=1002)
    assert auth.is_admin(BOB, mine, groups) and not auth.is_admin(ALICE, mine, groups)
    # No peer credentials: the daemon's own user in user mode, nobody in system mode.
    assert auth.is_admin(Principal(None), mine, groups)
    assert not auth.may_act(Principal(None), job(), SYSTEM, groups)


def test_ownership_by_uid_then_by_name():
    assert not auth.owns(ALICE, job(uid=1002, user="alice"))   # the uid decides
    assert auth.owns(ALICE, job(uid=None, user="alice"))       # recorded before uids were
    assert not auth.owns(ALICE, job(uid=None, user=""))


def test_refusal_message_names_owner_and_caller():
    assert auth.refusal(job(), BOB) == "permission denied: job 12 belongs to alice (you are bob)"
    assert auth.refusal(job(uid=7, user=""), Principal(9)) == "permission denied: job 12 belongs to uid 7 (you are uid 9)"


def test_check_jobs_is_all_or_nothing():
    auth.check_jobs(ALICE, [job(1), job(2)], SYSTEM, groups=groups)   # all hers
    auth.check_jobs(ROOT, [job(1)], SYSTEM, groups=groups)
    with pytest.raises(PermissionDenied) as info:
        auth.check_jobs(BOB, [job(1), job(2, uid=1002, user="bob"), job(3)], SYSTEM, groups=groups)
    assert info.value.status == 403
    assert info.value.lines == ["permission denied: job 1 belongs to alice (you are bob)",
                                "permission denied: job 3 belongs to alice (you are bob)",
                                "no job was cancelled (2 of 3 are not yours)"]
    with pytest.raises(PermissionDenied) as info:
        auth.check_jobs(BOB, [job(1)], SYSTEM, "shown", groups=groups)
    assert str(info.value) == "permission denied: job 1 belongs to alice (you are bob)"


def test_submitter_env_in_system_mode():
    env = {"LANG": "C.UTF-8", "SECRET": "x", "PATH": "/home/alice/bin"}
    assert auth.submitter_env(ALICE, SYSTEM, env) == {"LANG": "C.UTF-8"}
    assert auth.submitter_env(ROOT, SYSTEM, env) == env
    assert auth.submitter_env(ALICE, Access(mode=auth.USER, daemon_uid=1001), env) == env


def test_resolve_mode():
    assert auth.resolve_mode("auto", 0) == auth.SYSTEM
    assert auth.resolve_mode("auto", 1000) == auth.USER
    assert auth.resolve_mode("user", 0) == auth.USER
    with pytest.raises(CorralError, match="mode: system needs the daemon to run as root"):
        auth.resolve_mode("system", 1000)


def test_access_from_config_and_unknown_groups():
    group = grp.getgrgid(os.getegid()).gr_name
    access = auth.access_from_config(Config(socket_group=group, admin_group=group), euid=0)
    assert access.system and access.socket_gid == os.getegid() and access.admin_gid == os.getegid()
    assert access.socket_permissions() == (0o660, os.getegid())
    assert f"socket root:{group} 0660" in access.describe()
    bare = auth.access_from_config(Config(), euid=0)
    assert bare.socket_permissions() == (0o600, None) and "root only" in bare.describe()
    user = auth.access_from_config(Config(socket_group=group), euid=1000)
    assert user.mode == auth.USER and user.socket_permissions() == (0o600, None)
    with pytest.raises(ValidationError) as info:
        auth.access_from_config(Config(admin_group="no-such-group-crl"), euid=0, source="/etc/corral.yaml")
    assert str(info.value) == ('/etc/corral.yaml: invalid value for admin_group: "no-such-group-crl" '
                               "(no such group on this machine)")


def test_require_owner_and_admin():
    auth.require_owner(ALICE, SYSTEM, job(), groups=groups)
    auth.require_owner(CAROL, SYSTEM, job(), groups=groups)                # an admin
    with pytest.raises(PermissionDenied, match="job 12 belongs to alice"):
        auth.require_owner(BOB, SYSTEM, job(), groups=groups)
    with pytest.raises(PermissionDenied, match=r"only admins may stop the daemon \(you are bob\)"):
        auth.require_admin(BOB, SYSTEM, "stop the daemon", groups=groups)
    auth.require_admin(ROOT, SYSTEM, "stop the daemon", groups=groups)
    auth.require_admin(Principal(None), Access(mode=auth.USER), "stop the daemon")   # user mode: the daemon's user
    with pytest.raises(PermissionDenied, match="you are an unknown caller"):
        auth.require_admin(Principal(None), SYSTEM, "stop the daemon", groups=groups)


def test_run_as_and_user_environment():
    assert run_as(None, None, euid=0) is None          # owner unknown
    assert run_as(0, 0, "root", euid=0) is None         # root's job
    assert run_as(1001, 1001, "alice", euid=1000) is None   # not root: never switches
    who = run_as(os.geteuid() or 65534, None, euid=0)
    assert who is not None and who.home and who.shell
    ghost = run_as(987654, 987654, "", euid=0)
    assert ghost == RunAs(987654, 987654, "987654", "/", "/bin/sh")
    env = user_environment(RunAs(1001, 1001, "alice", "/home/alice", "/bin/bash"),
                           {"LANG": "C.UTF-8", "SECRET": "x"})
    assert env == {"HOME": "/home/alice", "USER": "alice", "LOGNAME": "alice", "SHELL": "/bin/bash",
                   "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}


def test_unknown_submitter_refused_in_system_mode():
    auth.check_submitter(ALICE, SYSTEM)
    auth.check_submitter(Principal(None), Access(mode=auth.USER))
    with pytest.raises(PermissionDenied, match="cannot tell who you are"):
        auth.check_submitter(Principal(None), SYSTEM)
