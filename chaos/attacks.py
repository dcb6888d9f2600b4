"""Attacks on a system-mode daemon: a root daemon shared by real Unix users who reach it
over its socket (the daemon knows them by SO_PEERCRED). Every attack is a real request
through the real socket, made as the real user (``runuser``): the CLI, or raw HTTP from
a small stdlib python run as that user, or a job of that user.

An attack *succeeds* when it changed something it must not (another user's job, the
daemon, a priority above what the user may use), read something it must not (another
user's environment or logs, the daemon's files, whether a path exists where only root
may look), or took the service down for the others. Target: none succeeds.

The users are :mod:`users`' (alice, bob, an admin, an outsider off the socket group).
Bob holds every GPU with a running job; alice (not an admin) attacks; the admin only
sets the stage. The daemon runs with ``preemption: true`` and priority classes (one
reserved for bob, one for admins), so a priority bypass would show as bob's job being
preempted. The full run then restarts the daemon without cgroups (``enforcement:
watchdog``) and tries a job's escapes again, and ends with a control: an admin's urgent
job does preempt bob's (the priority attacks were not blocked by accident).
``short``: the dozen most important attacks (``make test``).

Everything started is stopped by pid: the jobs carry the home's marker variable (each
submit adds it), cancelled and then killed by :meth:`harness.Home.close`.
"""

from __future__ import annotations

import base64
import errno
import json
import os
import pwd
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

import users  # noqa: E402
from harness import CORRAL, MARKER, Answer, Home, Result, alive, is_root, parse_answer, wait_for  # noqa: E402
from users import ADMIN, ADMIN_GROUP, ALICE, BOB, GROUP, OUTSIDER  # noqa: E402

NAME = "attacks"
#: In the environment of every CLI the attackers run: no job may see it.
SECRET = "CHAOS_ATTACK_SECRET"
TERMINAL = ("Succeeded", "Failed", "Cancelled")

CONFIG = f"""\
mode: system
socket_group: {GROUP}
admin_group: {ADMIN_GROUP}
simulate_gpus: 4
policy: priority
preemption: true
kill_grace: 2s
queues:
  - {{name: default, policy: priority}}
  - {{name: research, policy: priority}}
priority_classes:
  - {{name: low, value: -10, preempt: false}}
  - {{name: normal, value: 0, preempt: false}}
  - {{name: bobs, value: 50, preempt: true, users: [{BOB}]}}
  - {{name: urgent, value: 100, preempt: true, groups: [{ADMIN_GROUP}]}}
"""
#: What alice may use, as the daemon names it in a refusal.
ALICE_CLASSES = "classes you may use: low=-10, normal=0"

#: Raw HTTP as a user: argv = socket path, request as JSON; prints the answer's bytes
#: (base64) or ``ERR errno`` when it cannot connect.
RAW = r"""
import base64, json, socket, sys
path, req = sys.argv[1], json.loads(sys.argv[2])
if req.get("pad"):
    payload = b'{"jobs": [{"flags": {"command": "true", "name": "' + b"x" * req["pad"] + b'"}}]}'
elif req.get("body") is not None:
    payload = json.dumps(req["body"]).encode()
else:
    payload = b""
head = "%s %s HTTP/1.1\r\nHost: corral\r\nConnection: close\r\nContent-Type: application/json\r\n" \
       "Content-Length: %d\r\n" % (req["method"], req["path"], len(payload))
head += "".join("%s: %s\r\n" % kv for kv in req.get("headers", {}).items()) + "\r\n"
s = socket.socket(socket.AF_UNIX)
s.settimeout(60)
try:
    s.connect(path)
except OSError as exc:
    print("ERR", exc.errno)
    sys.exit(0)
try:
    s.sendall(head.encode("latin-1") + payload)
except (BrokenPipeError, ConnectionResetError):
    pass
data = b""
while True:
    try:
        chunk = s.recv(65536)
    except (ConnectionResetError, socket.timeout):
        break
    if not chunk:
        break
    data += chunk
print(base64.b64encode(data).decode())
"""

#: As a user: try to open/list each path; prints {path: "read" | errno name}.
PROBE = r"""
import errno, json, os, sys
out = {}
for p in sys.argv[1:]:
    try:
        if os.path.isdir(p):
            os.listdir(p)
        else:
            with open(p, "rb") as f:
                f.read(1)
        out[p] = "read"
    except OSError as exc:
        out[p] = errno.errorcode.get(exc.errno, str(exc.errno))
print(json.dumps(out))
"""

#: A user holds N connections; prints how many the daemon closed, then waits for stdin.
HOLD = r"""
import socket, sys, time
path, n = sys.argv[1], int(sys.argv[2])
socks, failed = [], 0
for _ in range(n):
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(path)
        socks.append(s)
    except OSError:
        failed += 1
time.sleep(1.0)
closed = failed
for s in socks:
    s.setblocking(False)
    try:
        closed += s.recv(1) == b""
    except BlockingIOError:
        pass
    except OSError:
        closed += 1
print(closed, flush=True)
sys.stdin.read()
"""

#: A job of alice trying to get out: argv = home, daemon pid, bob's job pid, bob's
#: supervisor pid. Prints {attempt: "done" | errno name} as JSON.
ESCAPE = r"""
import errno, json, os, signal, sys
home, daemon, bob, bob_sup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
me = os.environ.get("CORRAL_JOB_ID", "0")
out = {"uid": os.getuid(), "euid": os.geteuid(), "groups": sorted(os.getgroups())}
def attempt(name, fn):
    try:
        fn()
        out[name] = "done"
    except OSError as exc:
        out[name] = errno.errorcode.get(exc.errno, str(exc.errno))
def write(path, text, mode="w"):
    with open(path, mode) as f:
        f.write(text)
attempt("write into the home", lambda: write(os.path.join(home, "escaped"), "x"))
attempt("write into jobs/", lambda: write(os.path.join(home, "jobs", "escaped"), "x"))
attempt("append to config.yaml", lambda: write(os.path.join(home, "config.yaml"), "admin_group: corraltest\n", "a"))
attempt("forge its own exit status", lambda: write(os.path.join(home, "jobs", me, "state"), "status {\"exit_code\": 0}\n"))
attempt("remove the socket", lambda: os.unlink(os.path.join(home, "corral.sock")))
attempt("rename the store", lambda: os.rename(os.path.join(home, "corral.db"), os.path.join(home, "x.db")))
attempt("SIGKILL the daemon", lambda: os.kill(daemon, signal.SIGKILL))
attempt("SIGSTOP the daemon", lambda: os.kill(daemon, signal.SIGSTOP))
attempt("SIGKILL bob's job", lambda: os.kill(bob, signal.SIGKILL))
attempt("SIGKILL bob's process group", lambda: os.killpg(bob, signal.SIGKILL))
attempt("SIGKILL bob's supervisor", lambda: os.kill(bob_sup, signal.SIGKILL))
attempt("read bob's job's environ", lambda: open("/proc/%d/environ" % bob, "rb").read(1))
attempt("write into bob's stdout", lambda: write("/proc/%d/fd/1" % bob, "alice was here\n"))
attempt("read the daemon's environ", lambda: open("/proc/%d/environ" % daemon, "rb").read(1))
attempt("list the daemon's descriptors", lambda: os.listdir("/proc/%d/fd" % daemon))
leaked = []
for fd in os.listdir("/proc/self/fd"):
    try:
        target = os.readlink("/proc/self/fd/" + fd)
    except OSError:
        continue
    if int(fd) > 2 and not target.startswith("/proc/"):
        leaked.append(target)
out["inherited descriptors"] = leaked
try:
    lines = open("/proc/self/cgroup").read().splitlines()
except OSError:
    lines = []
for line in lines:                     # v2: "0::/path"; v1: "4:memory:/path"
    _, controllers, rel = line.split(":", 2)
    base = "/sys/fs/cgroup" + ("/" + controllers if controllers else "")
    if rel in ("", "/") or not os.path.isdir(base) or controllers not in ("", "memory", "pids"):
        continue
    what = controllers or "v2"
    own = base + rel
    pid = str(os.getpid())
    attempt(f"move itself to the root cgroup ({what})", lambda: write(os.path.join(base, "cgroup.procs"), pid))
    attempt(f"move itself to its parent cgroup ({what})",
            lambda: write(os.path.join(os.path.dirname(own), "cgroup.procs"), pid))
    for name in ("memory.max", "memory.limit_in_bytes", "pids.max"):
        if os.path.exists(os.path.join(own, name)):
            attempt(f"raise its own {name}", lambda: write(os.path.join(own, name), "max" if "max" in name else "-1"))
print(json.dumps(out), flush=True)
"""


@dataclass
class Tried:
    category: str
    name: str
    blocked: bool
    detail: str = ""


@dataclass
class Attack:
    category: str
    name: str
    fn: Callable[["Scene"], "str | None"]
    short: bool = False          # one of the dozen ``make test`` runs
    watchdog: bool = False       # tried again (full run) under a daemon without cgroups


ATTACKS: list[Attack] = []


def attack(category: str, name: str, short: bool = False, watchdog: bool = False):
    """An attack: returns None when it was blocked, else what it achieved (one line)."""
    def register(fn):
        ATTACKS.append(Attack(category, name, fn, short, watchdog))
        return fn
    return register


class Scene:
    """The daemon, the users' ways in, and the jobs the attacks aim at."""

    def __init__(self, short: bool):
        self.short = short
        self.argv, self.extra = users.user_cli(CORRAL)           # raises Unavailable
        self.python = users.system_python() or sys.executable
        self.h = Home(prefix="cxa")
        self.token = secrets.token_hex(6)
        self.work = tempfile.mkdtemp(prefix="cxaw", dir="/tmp")
        os.chmod(self.work, 0o755)                           # every user may enter it
        self.rootdir = tempfile.mkdtemp(prefix=f"crlchaos-{self.token}-", dir="/root")
        os.chmod(self.rootdir, 0o755)                        # /root itself (0700) keeps users out
        self.root_exe = os.path.join(self.rootdir, "tool")
        Path(self.root_exe).write_text("#!/bin/sh\necho root's tool\n")
        os.chmod(self.root_exe, 0o755)
        self.missing = os.path.join("/root", f"crlchaos-{self.token}-missing")
        self.bob_private = os.path.join(self.work, "bob-private")
        os.mkdir(self.bob_private, 0o700)
        bob = pwd.getpwnam(BOB)
        os.chown(self.bob_private, bob.pw_uid, bob.pw_gid)
        self.alice_dir = os.path.join(self.work, "alice")
        os.mkdir(self.alice_dir, 0o755)
        alice = pwd.getpwnam(ALICE)
        self.alice_uid = alice.pw_uid
        os.chown(self.alice_dir, alice.pw_uid, alice.pw_gid)
        self.escape_script = os.path.join(self.work, "escape.py")
        Path(self.escape_script).write_text(ESCAPE)
        os.chmod(self.escape_script, 0o644)
        self.bob_secret = f"bob-private-{self.token}"
        self.bob_log = f"bob-log-{self.token}"
        self.ids: dict[str, int] = {}

    # -- ways in ------------------------------------------------------------------------
    def user_env(self) -> dict[str, str]:
        env = dict(self.h.env)                  # carries the marker: Home.close finds what they start
        env[SECRET] = "root-only"
        return env

    def cli(self, user: str, *args: str, input: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        assigns = [f"CORRAL_HOME={self.h.home}", "PYTHONDONTWRITEBYTECODE=1",
                   *(f"{k}={v}" for k, v in self.extra.items())]
        try:
            return subprocess.run(["runuser", "-u", user, "--", "env", *assigns, *self.argv, *args],
                                  input=input, capture_output=True, text=True, env=self.user_env(),
                                  cwd=self.work, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            return subprocess.CompletedProcess(exc.cmd, 124, "", f"timed out after {timeout}s")

    def submit(self, user: str, *args: str) -> int:
        res = self.cli(user, "submit", "--json", "--cpus", "100m", "--env", f"{MARKER}={self.h.home}", *args)
        if res.returncode != 0:
            raise RuntimeError(f"submit as {user} {args}: {res.stderr.strip()}")
        return json.loads(res.stdout)["id"]

    def py(self, user: str, code: str, *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
        return subprocess.run(["runuser", "-u", user, "--", self.python, "-c", code, *args], capture_output=True,
                              text=True, env=self.user_env(), cwd=self.work, timeout=timeout)

    def raw(self, user: str, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
            pad: int = 0) -> Answer:
        req = {"method": method, "path": path, "body": body, "headers": headers or {}, "pad": pad}
        res = self.py(user, RAW, self.h.socket_path, json.dumps(req))
        out = res.stdout.strip()
        if res.returncode != 0 or not out:
            raise RuntimeError(f"raw request as {user}: {res.stderr.strip()[-300:]}")
        if out.startswith("ERR"):
            answer = Answer(0)
            answer.headers["connect-errno"] = out.split()[1]
            return answer
        return parse_answer(base64.b64decode(out))

    def probe(self, user: str, *paths: str) -> dict[str, str]:
        return json.loads(self.py(user, PROBE, *paths).stdout)

    # -- what root sees -------------------------------------------------------------------
    def job(self, job_id: int) -> dict:
        answer = self.h.request("GET", f"/v1/jobs/{job_id}")
        if answer.status != 200:
            raise RuntimeError(f"show {job_id} as root: HTTP {answer.status} {answer.body[:200]!r}")
        return answer.json()

    def job_ids(self) -> set[int]:
        return {j["id"] for j in self.h.jobs()}

    def wait_state(self, job_id: int, states: tuple[str, ...], timeout: float = 60) -> dict:
        view = wait_for(lambda: (v := self.job(job_id)) and v["state"] in states and v, timeout=timeout)
        if not view:
            raise RuntimeError(f"job {job_id} never reached {states}: {self.job(job_id)['state']}")
        return view

    def log_of(self, job_id: int) -> str:
        try:
            return self.h.path("jobs", str(job_id), "stdout.log").read_text(errors="replace")
        except OSError:
            return ""

    def node(self) -> str:
        return self.h.request("GET", "/v1/nodes").json()["nodes"][0]["name"]

    # -- the stage --------------------------------------------------------------------------
    def setup(self) -> None:
        self.h.write_config(CONFIG)
        self.h.up()
        self.daemon_pid = self.h.daemon_pid()
        ids = self.ids
        ids["bob_run"] = self.submit(BOB, "--gpus", "4", "--time", "1h", "--env", f"BOBSECRET={self.bob_secret}",
                                     "--", f"echo {self.bob_log}; exec sleep 3600")
        self.wait_state(ids["bob_run"], ("Running",))
        ids["bob_pend"] = self.submit(BOB, "--gpus", "1", "--", "sleep 3600")
        ids["alice_pend"] = self.submit(ALICE, "--gpus", "1", "--", "true")
        if not self.short:
            ids["bob_held"] = self.submit(BOB, "--hold", "--", "true")
            ids["bob_array"] = self.submit(BOB, "--hold", "--array", "0-2", "--", "true")
            ids["bob_done"] = self.submit(BOB, "--", "true")
            self.wait_state(ids["bob_done"], TERMINAL)
        if not wait_for(lambda: self.bob_log in self.log_of(ids["bob_run"]), timeout=30):
            raise RuntimeError("bob's job wrote nothing")
        self.bob_view = self.job(ids["bob_run"])
        self.bob_pids = self.bob_view["pids"]

    def restart(self, extra_config: str) -> None:
        """A new daemon with more config (bob's running job is re-adopted)."""
        res = self.h.cli("down", timeout=60)
        if res.returncode != 0 or not wait_for(lambda: not alive(self.daemon_pid), timeout=30):
            raise RuntimeError(f"corral down: {res.stderr.strip()}")
        self.h.write_config(CONFIG + extra_config)
        self.h.up()
        self.daemon_pid = self.h.daemon_pid()
        view = self.wait_state(self.ids["bob_run"], ("Running",))
        if view["pids"] != self.bob_pids:
            raise RuntimeError(f"bob's job was not re-adopted: {view['pids']} (was {self.bob_pids})")

    def teardown(self) -> None:
        try:
            if self.h.serving():
                left = [str(j["id"]) for j in self.h.jobs() if j["state"] not in TERMINAL]
                if left:
                    self.h.cli("cancel", *left, timeout=60)
                    self.h.cli("wait", *left, timeout=60)
        finally:
            self.h.close()
            shutil.rmtree(self.work, ignore_errors=True)
            shutil.rmtree(self.rootdir, ignore_errors=True)


# -- helpers for the checks --------------------------------------------------------------------

class Weak(str):
    """The attack was blocked, but not as it should be (the refusal does not say why, or
    says something else): a failure of the scenario, not a successful attack."""


def refused(res: subprocess.CompletedProcess, *words: str) -> str | None:
    """None when the CLI refused with an error line containing ``words``; a success
    when it did what was asked; :class:`Weak` when it refused for another reason."""
    lines = res.stderr.strip().splitlines()
    if res.returncode == 0:
        return f"accepted (exit 0): {res.stdout.strip()[:200]}"
    text = res.stderr.strip()
    missing = [w for w in words if w not in text]
    if missing:
        return Weak(f"refused, but the error does not say {missing[0]!r}: {text[:300]}")
    if not lines or not lines[-1].startswith("error: ") and not lines[0].startswith("error: "):
        return Weak(f"exit {res.returncode} without an error line: {text[:300]}")
    return None


def status_refused(answer: Answer, *codes: int) -> str | None:
    """None for one of ``codes``; 2xx is a success; any other refusal :class:`Weak`."""
    if answer.status in codes:
        return None
    line = f"HTTP {answer.status} (expected {'/'.join(map(str, codes))}): {answer.body[:200]!r}"
    return line if 200 <= answer.status < 300 else Weak(line)


def about(what: str, why: str | None) -> str | None:
    """``why`` said of ``what``, keeping whether it is :class:`Weak`."""
    return None if not why else type(why)(f"{what}: {why}")


def first(*checks: "str | None") -> str | None:
    """The first success among ``checks``, else the first :class:`Weak` one, else None."""
    found = [c for c in checks if c]
    return next((c for c in found if not isinstance(c, Weak)), found[0] if found else None)


def no_new_jobs(s: Scene, before: set[int]) -> str | None:
    new = sorted(s.job_ids() - before)
    if not new:
        return None
    views = [s.job(i) for i in new]
    return "jobs were created: " + ", ".join(f"{v['id']} (user {v['user']}, priority {v['priority']})" for v in views)


def flags(command: str = "true", **kw) -> dict:
    return {"flags": {"command": command, "requests": {"cpu": "100m"}, **kw}}


def document(spec: dict, metadata: dict | None = None) -> dict:
    return {"apiVersion": "corral/v1", "kind": "Job", "metadata": metadata or {"name": "x"},
            "spec": {"command": ["true"], "resources": {"requests": {"cpu": "100m"}}, **spec}}


# -- priority ------------------------------------------------------------------------------------

@attack("priority", "submit --priority 1000000 --gpus 4", short=True)
def a_priority_number(s: Scene) -> str | None:
    before = s.job_ids()
    res = s.cli(ALICE, "submit", "--cpus", "100m", "--priority", "1000000", "--gpus", "4", "--", "true")
    return first(refused(res, "permission denied", ALICE_CLASSES), no_new_jobs(s, before))


@attack("priority", "submit with the class reserved for bob", short=True)
def a_priority_bobs_class(s: Scene) -> str | None:
    before = s.job_ids()
    res = s.cli(ALICE, "submit", "--cpus", "100m", "--priority", "bobs", "--gpus", "4", "--", "true")
    return first(refused(res, "priority class bobs is not open to", ALICE_CLASSES), no_new_jobs(s, before))


@attack("priority", "submit with the admins' class")
def a_priority_admin_class(s: Scene) -> str | None:
    before = s.job_ids()
    res = s.cli(ALICE, "submit", "--cpus", "100m", "--priority", "urgent", "--gpus", "4", "--", "true")
    return first(refused(res, "priority class urgent is not open to", ALICE_CLASSES), no_new_jobs(s, before))


@attack("priority", "submit --no-preempt, to be shielded from every preemption")
def a_priority_no_preempt(s: Scene) -> str | None:
    before = s.job_ids()
    res = s.cli(ALICE, "submit", "--cpus", "100m", "--no-preempt", "--", "true")
    return first(refused(res, "permission denied", "--no-preempt"), no_new_jobs(s, before))


@attack("priority", "update --priority upwards on her own job")
def a_priority_update_up(s: Scene) -> str | None:
    job = s.ids["alice_pend"]
    res = s.cli(ALICE, "update", "--priority", "100", str(job))
    got = s.job(job)["priority"]
    return first(refused(res, "only admins may raise a priority"),
                 None if got == 0 else f"job {job}'s priority is now {got}")


@attack("priority", "YAML spec.priority: 1000000")
def a_priority_yaml(s: Scene) -> str | None:
    before = s.job_ids()
    text = ("apiVersion: corral/v1\nkind: Job\nmetadata: {name: sneaky}\nspec:\n  command: [\"true\"]\n"
            "  priority: 1000000\n  resources: {requests: {cpu: 100m, nvidia.com/gpu: 4}}\n")
    res = s.cli(ALICE, "submit", "-f", "-", input=text)
    return first(refused(res, "permission denied", ALICE_CLASSES), no_new_jobs(s, before))


@attack("priority", "raw JSON: flags priority 1000000, document priority \"urgent\" and \"1000000\"")
def a_priority_raw(s: Scene) -> str | None:
    before = s.job_ids()
    for body in ({"jobs": [flags(priority=1000000, gpus=4)]},
                 {"jobs": [document({"priority": "urgent"})]},
                 {"jobs": [document({"priority": "bobs"})]},
                 {"jobs": [document({"priority": 0}), document({"priority": "1000000"})]},   # a batch smuggling one
                 {"jobs": [flags(priority=1000000, array="0-3")]}):
        answer = s.raw(ALICE, "POST", "/v1/jobs", body)
        why = status_refused(answer, 403)
        if why:
            return about(json.dumps(body)[:120], why)
    return no_new_jobs(s, before)


@attack("priority", "raw update: priority 1000000 on her own job")
def a_priority_raw_update(s: Scene) -> str | None:
    job = s.ids["alice_pend"]
    answer = s.raw(ALICE, "POST", "/v1/jobs/update", {"ids": [job], "priority": 1000000})
    got = s.job(job)["priority"]
    return first(status_refused(answer, 403), None if got == 0 else f"job {job}'s priority is now {got}")


@attack("priority", "preemption: bob's running job survives alice's attempts", short=True)
def a_priority_no_preemption(s: Scene) -> str | None:
    # Alice's allowed best for every GPU (class normal; a raw 0, which may preempt), then
    # give the scheduler its rounds.
    jobs = [s.submit(ALICE, "--gpus", "4", "--priority", p, "--", "true") for p in ("normal", "0")]
    wait_for(lambda: all(s.job(j).get("reason") not in (None, "", "Submitted") for j in jobs), timeout=10)
    time.sleep(1.5)          # several scheduling rounds (not a threshold: nothing is timed)
    view = s.job(s.ids["bob_run"])
    if view["state"] != "Running" or view["attempts"] != s.bob_view["attempts"] or \
            view["started_at"] != s.bob_view["started_at"] or view["pids"] != s.bob_pids:
        return f"bob's job {view['id']} is {view['state']} (attempts {view['attempts']}): {view.get('message')}"
    running = [j for j in s.h.jobs() if j["user"] == ALICE and j["state"] == "Running" and j["gpus"]]
    if running:
        return f"alice's job {running[0]['id']} runs on GPUs {running[0]['gpus']}"
    return None


# -- other users' jobs --------------------------------------------------------------------------

def bob_unchanged(s: Scene, key: str, **expect: Any) -> str | None:
    view = s.job(s.ids[key])
    for k, v in expect.items():
        if view.get(k) != v:
            return f"bob's job {view['id']}: {k} is {view.get(k)!r} (was {v!r})"
    return None


def belongs(s: Scene, key: str) -> str:
    return f"job {s.ids[key]} belongs to {BOB}"


@attack("others' jobs", "cancel bob's running job", short=True)
def a_cancel_bob(s: Scene) -> str | None:
    res = s.cli(ALICE, "cancel", str(s.ids["bob_run"]))
    return first(refused(res, "permission denied", belongs(s, "bob_run")), bob_unchanged(s, "bob_run", state="Running"))


@attack("others' jobs", "raw cancel of bob's job")
def a_raw_cancel_bob(s: Scene) -> str | None:
    answer = s.raw(ALICE, "POST", "/v1/jobs/cancel", {"ids": [s.ids["bob_run"], s.ids["bob_run"]]})
    return first(status_refused(answer, 403), bob_unchanged(s, "bob_run", state="Running"))


@attack("others' jobs", "hold bob's pending job")
def a_hold_bob(s: Scene) -> str | None:
    res = s.cli(ALICE, "hold", str(s.ids["bob_pend"]))
    return first(refused(res, belongs(s, "bob_pend")), bob_unchanged(s, "bob_pend", held=False, state="Pending"))


@attack("others' jobs", "release bob's held job")
def a_release_bob(s: Scene) -> str | None:
    res = s.cli(ALICE, "release", str(s.ids["bob_held"]))
    return first(refused(res, belongs(s, "bob_held")), bob_unchanged(s, "bob_held", held=True, state="Pending"))


@attack("others' jobs", "update bob's running job: time limit up")
def a_update_bob_time(s: Scene) -> str | None:
    res = s.cli(ALICE, "update", "--time", "10h", str(s.ids["bob_run"]))
    return first(refused(res, belongs(s, "bob_run")), bob_unchanged(s, "bob_run", time_limit=3600))


@attack("others' jobs", "update bob's pending job: queue, priority down")
def a_update_bob_queue(s: Scene) -> str | None:
    for args in (("--queue", "research"), ("--priority", "-10")):
        res = s.cli(ALICE, "update", *args, str(s.ids["bob_pend"]))
        why = first(refused(res, belongs(s, "bob_pend")), bob_unchanged(s, "bob_pend", queue="default", priority=0))
        if why:
            return about(f"update {' '.join(args)}", why)
    return None


@attack("others' jobs", "cancel a batch of her own and bob's jobs", short=True)
def a_cancel_mixed(s: Scene) -> str | None:
    res = s.cli(ALICE, "cancel", str(s.ids["alice_pend"]), str(s.ids["bob_pend"]))
    mine = s.job(s.ids["alice_pend"])["state"]
    return first(refused(res, belongs(s, "bob_pend"), "no job was cancelled"),
                 bob_unchanged(s, "bob_pend", state="Pending"),
                 None if mine == "Pending" else f"her own job {s.ids['alice_pend']} is {mine}: half the batch ran")


@attack("others' jobs", "show, ps, wait, top: bob's environment", short=True)
def a_show_bob_env(s: Scene) -> str | None:
    job = s.ids["bob_run"]
    res = s.cli(ALICE, "show", "--json", str(job))
    if res.returncode != 0:
        return None if "permission denied" in res.stderr else Weak(f"show failed: {res.stderr.strip()[:200]}")
    if "env" in json.loads(res.stdout):
        return "show --json has bob's env"
    seen = [("show", res.stdout), ("show (text)", s.cli(ALICE, "show", str(job)).stdout),
            ("ps", s.cli(ALICE, "ps", "--json").stdout)]
    for path in (f"/v1/jobs/{job}", f"/v1/jobs/{job}/wait?timeout=0", "/v1/jobs", "/v1/top", "/v1/usage?by=job"):
        seen.append((path, s.raw(ALICE, "GET", path).body.decode(errors="replace")))
    for where, text in seen:
        if s.bob_secret in text:
            return f"{where} shows bob's BOBSECRET"
    return None


@attack("others' jobs", "read bob's logs", short=True)
def a_logs_bob(s: Scene) -> str | None:
    job = s.ids["bob_run"]
    outs = [s.cli(ALICE, "logs", str(job)), s.cli(ALICE, "logs", "--stderr", str(job))]
    for res in outs:
        if s.bob_log in res.stdout:
            return "alice read bob's stdout"
        why = refused(res, "permission denied", belongs(s, "bob_run"))
        if why:
            return why
    for path in (f"/v1/jobs/{job}/logs", f"/v1/jobs/{job}/logs?stream=stderr&follow=true&offset=0"):
        answer = s.raw(ALICE, "GET", path)
        if s.bob_log.encode() in answer.body:
            return f"GET {path} gave bob's stdout"
        why = status_refused(answer, 403)
        if why:
            return about(f"GET {path}", why)
    return None


@attack("others' jobs", "hold or update a batch of her own and bob's jobs")
def a_batch_mixed(s: Scene) -> str | None:
    mine, his = str(s.ids["alice_pend"]), str(s.ids["bob_pend"])
    for args in (("hold", mine, his), ("update", "--priority", "-5", mine, his), ("update", "--time", "5m", his, mine)):
        res = s.cli(ALICE, *args)
        why = first(refused(res, belongs(s, "bob_pend")), bob_unchanged(s, "bob_pend", held=False, priority=0),
                    None if (v := s.job(int(mine)))["priority"] == 0 and not v["held"] and v.get("time_limit") is None
                    else f"her own job {mine} changed: half the batch ran")
        if why:
            return about(f"corral {' '.join(args)}", why)
    return None


@attack("others' jobs", "replay bob's submit idempotency key")
def a_idempotency_key(s: Scene) -> str | None:
    key = f"chaos-{s.token}"
    body = {"jobs": [flags("sleep 3600", env={MARKER: s.h.home}, hold=True)], "idempotency_key": key}
    first_answer = s.raw(BOB, "POST", "/v1/jobs", body)
    if first_answer.status != 201:
        raise RuntimeError(f"bob's keyed submit: HTTP {first_answer.status}")
    bobs = first_answer.json()["jobs"][0]["id"]
    answer = s.raw(ALICE, "POST", "/v1/jobs", body)
    if answer.status != 201:
        return None if answer.status in (403, 409) else Weak(f"HTTP {answer.status}: {answer.body[:200]!r}")
    got = answer.json()["jobs"][0]
    if got["id"] == bobs or got["user"] != ALICE:
        return f"alice's submit with bob's key answered bob's job {got['id']} ({got['user']})"
    return None


def bobs_jobs(s: Scene) -> dict[int, tuple]:
    return {j["id"]: (j["state"], j["held"], j["priority"], j["queue"]) for j in s.h.jobs() if j["user"] == BOB}


@attack("others' jobs", "cancel, hold, release, update bob's jobs by selector, range and array task")
def a_selectors(s: Scene) -> str | None:
    before = bobs_jobs(s)
    array = s.ids["bob_array"]
    bodies = [{"selector": {"user": BOB}}, {"selector": {}}, {"selector": {"mine": True, "user": BOB}},
              {"selector": {"array": array}}, {"ranges": [[1, 1000000]]}, {"tasks": [[array, 1]]},
              {"ids": [array]}]
    for action, extra in (("cancel", {}), ("hold", {}), ("release", {}), ("update", {"priority": -5})):
        for body in bodies:
            answer = s.raw(ALICE, "POST", f"/v1/jobs/{action}", {**body, **extra})
            changed = {i: (v, bobs_jobs(s).get(i)) for i, v in before.items() if bobs_jobs(s).get(i) != v}
            if changed:
                return f"{action} {json.dumps(body)} (HTTP {answer.status}) changed bob's jobs: {changed}"
            if answer.status >= 500 or answer.status == 0:
                return Weak(f"{action} {json.dumps(body)}: HTTP {answer.status} {answer.body[:200]!r}")
    return None


# -- what other users' terminals print -----------------------------------------------------------

ESC, BEL = "\x1b", "\x07"


def control_chars(text: str) -> list[str]:
    return sorted({repr(c) for c in text if (ord(c) < 32 and c not in "\n\t") or 0x7f <= ord(c) <= 0x9f})


@attack("injection", "escape sequences and fake lines in what bob's CLI prints")
def a_terminal_injection(s: Scene) -> str | None:
    evil = f"echo {ESC}]0;pwned{BEL}{ESC}[2J{ESC}[31m\n  User:      {BOB}\n"
    held = s.submit(ALICE, "--hold", "--workdir", s.alice_dir, "--", evil)
    failed = s.submit(ALICE, "--workdir", s.alice_dir, "--", f"/nonexistent{ESC}[2J{ESC}]0;pwned{BEL}")
    s.wait_state(failed, TERMINAL)
    try:
        for args in (("show", str(held)), ("show", str(failed)), ("ps",), ("ps", "--all"), ("top", "--once")):
            res = s.cli(BOB, *args)
            if res.returncode != 0:
                raise RuntimeError(f"bob's `corral {' '.join(args)}`: {res.stderr.strip()[:200]}")
            bad = control_chars(res.stdout)
            if bad:
                return f"bob's `corral {' '.join(args)}` printed {', '.join(bad)} from alice's job"
            if args[0] == "show" and sum(line.startswith("  User:") for line in res.stdout.splitlines()) != 1:
                return f"bob's `corral {' '.join(args)}` shows a line alice wrote: '  User:      {BOB}'"
    finally:
        s.cli(ALICE, "cancel", str(held))
    return None


# -- admin-only ---------------------------------------------------------------------------------

def daemon_same(s: Scene) -> str | None:
    pid = s.h.daemon_pid()
    if pid != s.daemon_pid or not alive(pid) or not s.h.serving():
        return f"the daemon is gone (pid {s.daemon_pid} -> {pid})"
    return None


@attack("admin-only", "stop the daemon (corral down, POST /v1/shutdown)", short=True)
def a_shutdown(s: Scene) -> str | None:
    res = s.cli(ALICE, "down")
    why = first(refused(res, "only admins may stop the daemon"), daemon_same(s))
    if why:
        return why
    return first(status_refused(s.raw(ALICE, "POST", "/v1/shutdown"), 403), daemon_same(s))


@attack("admin-only", "prune every finished job (corral prune, POST /v1/prune)")
def a_prune(s: Scene) -> str | None:
    res = s.cli(ALICE, "prune", "--older-than", "0")
    answer = s.raw(ALICE, "POST", "/v1/prune", {"older_than": "0"})
    gone = s.h.request("GET", f"/v1/jobs/{s.ids['bob_done']}").status == 404
    return first(refused(res, "only admins may prune"), status_refused(answer, 403),
                 f"bob's finished job {s.ids['bob_done']} was pruned" if gone else None)


def node_state(s: Scene) -> str:
    return s.h.request("GET", "/v1/nodes").json()["nodes"][0].get("state", "?")


@attack("admin-only", "drain the node")
def a_drain(s: Scene) -> str | None:
    node = s.node()
    before = node_state(s)
    res = s.cli(ALICE, "drain", node)
    answer = s.raw(ALICE, "POST", f"/v1/nodes/{node}/drain")
    after = node_state(s)
    return first(refused(res, "only admins may drain nodes"), status_refused(answer, 403),
                 None if after == before else f"node {node} is {after} (was {before})")


@attack("admin-only", "undrain a node an admin drained")
def a_undrain(s: Scene) -> str | None:
    node = s.node()
    if s.cli(ADMIN, "drain", node).returncode != 0:
        raise RuntimeError("the admin cannot drain the node")
    drained = node_state(s)
    try:
        res = s.cli(ALICE, "undrain", node)
        answer = s.raw(ALICE, "POST", f"/v1/nodes/{node}/undrain")
        after = node_state(s)
        return first(refused(res, "only admins may undrain nodes"), status_refused(answer, 403),
                     None if after == drained else f"node {node} is {after} (the admin drained it: {drained})")
    finally:
        s.cli(ADMIN, "undrain", node)


# -- identity spoofing --------------------------------------------------------------------------

def alices(s: Scene, before: set[int]) -> str | None:
    """Every job made since ``before`` is alice's (uid and name)."""
    for job_id in sorted(s.job_ids() - before):
        view = s.job(job_id)
        if view["user"] != ALICE:
            return f"job {job_id} was recorded as {view['user']!r}'s"
        pids = view.get("pids") or {}
        if pids.get("job") and users.uid_of_pid(pids["job"]) not in (None, s.alice_uid):
            return f"job {job_id} runs as uid {users.uid_of_pid(pids['job'])}"
    return None


@attack("spoofing", "owner fields in a submit body (user, uid, gid, owner)", short=True)
def a_spoof_fields(s: Scene) -> str | None:
    before = s.job_ids()
    bodies = [
        {"jobs": [flags()], "user": BOB, "uid": 0, "gid": 0},
        {"jobs": [{"flags": {"command": "true", "user": BOB, "uid": 0}}]},
        {"jobs": [document({"user": "root", "uid": 0}, {"name": "x", "owner": BOB})]},
        {"jobs": [{**document({}), "user": BOB, "uid": 0, "owner": "root"}]},
    ]
    for body in bodies:
        answer = s.raw(ALICE, "POST", "/v1/jobs", body)
        if answer.status not in (201, 400, 403, 422):
            return Weak(f"{json.dumps(body)[:100]}: HTTP {answer.status}")
    return alices(s, before)


@attack("spoofing", "identity headers (X-Forwarded-User, X-Remote-User, Forwarded ...)")
def a_spoof_headers(s: Scene) -> str | None:
    headers = {"X-Forwarded-User": BOB, "X-Remote-User": "root", "X-Forwarded-For": "127.0.0.1",
               "Forwarded": "for=127.0.0.1;by=root", "X-Real-IP": "127.0.0.1", "X-Corral-User": "root",
               "Authorization": "Basic cm9vdDo=", "Remote-User": "root", "X-Forwarded-Uid": "0"}
    before = s.job_ids()
    answer = s.raw(ALICE, "POST", "/v1/jobs", {"jobs": [flags(env={MARKER: s.h.home})]}, headers=headers)
    if answer.status != 201:
        return Weak(f"submit with headers: HTTP {answer.status}: {answer.body[:200]!r}")
    why = alices(s, before)
    if why:
        return why
    answer = s.raw(ALICE, "POST", "/v1/jobs/cancel", {"ids": [s.ids["bob_run"]]}, headers=headers)
    answer2 = s.raw(ALICE, "POST", "/v1/shutdown", headers=headers)
    return first(status_refused(answer, 403), status_refused(answer2, 403), bob_unchanged(s, "bob_run", state="Running"),
                 daemon_same(s))


def job_env(text: str) -> dict[str, str]:
    return dict(line[4:].split("=", 1) for line in text.splitlines() if line.startswith("env:") and "=" in line)


@attack("spoofing", "her job runs as someone else or sees the CLI's secret", short=True)
def a_job_identity(s: Scene) -> str | None:
    job = s.submit(ALICE, "--workdir", s.alice_dir, "--", 'echo "uid=$(id -u)"; env | sed "s/^/env:/"')
    s.wait_state(job, TERMINAL)
    text = s.log_of(job)
    env = job_env(text)
    if f"uid={s.alice_uid}" not in text.splitlines():
        return f"job {job} ran as {[l for l in text.splitlines() if l.startswith('uid=')]}"
    leaked = [k for k in (SECRET, "CORRAL_HOME") if k in env]
    if leaked:
        return f"job {job} sees {leaked[0]}"
    return None


@attack("spoofing", "base_env in the body: HOME=/root, USER=root, LD_PRELOAD, the secret")
def a_spoof_base_env(s: Scene) -> str | None:
    base = {"HOME": "/root", "USER": "root", "LOGNAME": "root", "LD_PRELOAD": "/tmp/evil.so",
            "PATH": "/root/bin:/usr/bin:/bin", SECRET: "root-only"}
    answer = s.raw(ALICE, "POST", "/v1/jobs", {"jobs": [flags('env | sed "s/^/env:/"', env={MARKER: s.h.home},
                                                              workdir=s.alice_dir)], "base_env": base})
    if answer.status != 201:
        return Weak(f"HTTP {answer.status}: {answer.body[:200]!r}")
    job = answer.json()["jobs"][0]["id"]
    s.wait_state(job, TERMINAL)
    env = job_env(s.log_of(job))
    home = pwd.getpwnam(ALICE).pw_dir
    wrong = [f"{k}={env.get(k)}" for k, v in (("HOME", home), ("USER", ALICE), ("LOGNAME", ALICE))
             if env.get(k) != v]
    wrong += [k for k in ("LD_PRELOAD", SECRET) if k in env]
    if env.get("PATH", "").startswith("/root"):
        wrong.append(f"PATH={env['PATH']}")
    return f"job {job}'s environment: {', '.join(wrong)}" if wrong else None


# -- information leaks -------------------------------------------------------------------------

def submit_lines(s: Scene, *args: str, user: str = ALICE) -> str:
    res = s.cli(user, "submit", "--cpus", "100m", *args)
    return res.stderr.strip() if res.returncode else f"ACCEPTED {res.stdout.strip()}"


@attack("information", "workdir: an existing /root/... vs a missing one", short=True)
def a_workdir_exists(s: Scene) -> str | None:
    before = s.job_ids()
    seen = {}
    for path in (s.rootdir, s.missing, "/root"):
        seen[path] = submit_lines(s, "--workdir", path, "--", "true").replace(path, "DIR")
    if len(set(seen.values())) != 1:
        return "the answers differ: " + " | ".join(f"{k}: {v}" for k, v in seen.items())
    line = next(iter(seen.values()))
    if "ACCEPTED" in line:
        return f"a workdir in /root was accepted: {line}"
    return no_new_jobs(s, before)


@attack("information", "a workdir she cannot enter (bob's 0700 directory)")
def a_workdir_private(s: Scene) -> str | None:
    before = s.job_ids()
    line = submit_lines(s, "--workdir", s.bob_private, "--", "true")
    answer = s.raw(ALICE, "POST", "/v1/jobs", {"jobs": [{"flags": {"command": "true"}}], "default_workdir": "/root"})
    why = None if "expected an existing directory you can enter" in line else f"submit: {line[:200]}"
    return first(why if why is None or "ACCEPTED" in why else Weak(why),
                 status_refused(answer, 400, 403, 422), no_new_jobs(s, before))


@attack("information", "command path: an executable under /root vs a missing one")
def a_command_exists(s: Scene) -> str | None:
    answers = {}
    for path in (s.root_exe, os.path.join(s.rootdir, "missing-tool")):
        res = s.cli(ALICE, "submit", "--json", "--cpus", "100m", "--workdir", s.alice_dir,
                    "--env", f"{MARKER}={s.h.home}", "--", path)
        if res.returncode != 0:
            answers[path] = "refused: " + res.stderr.strip().replace(path, "CMD")
            continue
        job = json.loads(res.stdout)["id"]
        s.wait_state(job, TERMINAL)
        view = json.loads(s.cli(ALICE, "show", "--json", str(job)).stdout)
        seen = {k: view.get(k) for k in ("state", "reason", "message", "exit_code", "signal")}
        answers[path] = json.dumps(seen).replace(path, "CMD")
    a, b = answers.values()
    return None if a == b else f"existing: {a} | missing: {b}"


@attack("information", "workdir: a symlink swapped to /root/... after submit")
def a_workdir_swap(s: Scene) -> str | None:
    answers = {}
    for target in (s.rootdir, s.missing):
        link = os.path.join(s.alice_dir, f"link-{len(answers)}")
        res = s.py(ALICE, "import os, sys; os.symlink(sys.argv[1], sys.argv[2])", s.alice_dir, link)
        if res.returncode != 0:
            raise RuntimeError(f"symlink as alice: {res.stderr}")
        job = s.submit(ALICE, "--hold", "--workdir", link, "--", "true")
        res = s.py(ALICE, "import os, sys; os.unlink(sys.argv[2]); os.symlink(sys.argv[1], sys.argv[2])", target, link)
        if res.returncode != 0:
            raise RuntimeError(f"swapping the symlink as alice: {res.stderr}")
        s.cli(ALICE, "release", str(job))
        s.wait_state(job, TERMINAL)
        view = json.loads(s.cli(ALICE, "show", "--json", str(job)).stdout)
        seen = {k: view.get(k) for k in ("state", "reason", "message", "exit_code", "signal")}
        answers[target] = json.dumps(seen).replace(target, "DIR").replace(link, "LINK")
    a, b = answers.values()
    return None if a == b else f"existing: {a} | missing: {b}"


@attack("information", "read the daemon's files and bob's job directory")
def a_read_files(s: Scene) -> str | None:
    home = s.h.home
    bob = os.path.join(home, "jobs", str(s.ids["bob_run"]))
    paths = [os.path.join(home, n) for n in ("config.yaml", "corral.db", "corral.db-wal", "daemon.log",
                                              "store.id", "daemon.lock")]
    paths += [home, os.path.join(home, "jobs"), bob, os.path.join(bob, "stdout.log"), os.path.join(bob, "state")]
    paths = [p for p in paths if os.path.exists(p)]
    got = s.probe(ALICE, *paths)
    read = [p.replace(home, "$CORRAL_HOME") + f" ({got.get(p)})" for p in paths if got.get(p) != "EACCES"]
    return "readable: " + ", ".join(read) if read else None


# -- the outsider ------------------------------------------------------------------------------

@attack("outsider", "crlout (not in the socket group) connects", short=True)
def a_outsider(s: Scene) -> str | None:
    answer = s.raw(OUTSIDER, "GET", "/v1/health")
    if answer.status != 0 or answer.headers.get("connect-errno") != str(errno.EACCES):
        return f"the outsider's raw connect: HTTP {answer.status} {answer.headers}"
    for args in (("ps",), ("up",), ("submit", "--", "true")):
        res = s.cli(OUTSIDER, *args)
        why = refused(res, "permission denied", f"ask an admin to add you to group {GROUP}")
        if why:
            return about(f"corral {' '.join(args)}", why)
    uid = pwd.getpwnam(OUTSIDER).pw_uid
    theirs = [p for p in s.h.processes() if users.uid_of_pid(p) == uid]
    return first(f"the outsider left processes running: {theirs}" if theirs else None, daemon_same(s))


# -- resource abuse ----------------------------------------------------------------------------

@attack("abuse", "hold 300 connections while bob works", short=True)
def a_connection_hog(s: Scene) -> str | None:
    from corral.daemon.server import MAX_CONNECTIONS_PER_USER

    n = MAX_CONNECTIONS_PER_USER + 44
    hog = subprocess.Popen(["runuser", "-u", ALICE, "--", s.python, "-c", HOLD, s.h.socket_path, str(n)],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=s.user_env())
    try:
        assert hog.stdout is not None
        closed = int(hog.stdout.readline() or -1)
        res = s.cli(BOB, "ps", "--json")
        bob_ok = res.returncode == 0 and isinstance(json.loads(res.stdout).get("jobs"), list)
        root_ok = s.h.serving()
    finally:
        if hog.stdin:
            hog.stdin.close()
        hog.wait(timeout=30)
    alice_ok = s.cli(ALICE, "ps", "--json").returncode == 0
    return first(None if closed >= n - MAX_CONNECTIONS_PER_USER else
                 f"only {closed} of {n} connections refused: alice holds more than {MAX_CONNECTIONS_PER_USER}",
                 None if bob_ok else f"bob was not served while alice held {n} connections: {res.stderr.strip()[:200]}",
                 None if root_ok else "root was not served",
                 None if alice_ok else "alice is not served after letting go")


@attack("abuse", "a 5 MiB request body")
def a_big_body(s: Scene) -> str | None:
    before = s.job_ids()
    answer = s.raw(ALICE, "POST", "/v1/jobs", pad=5 * 2**20)
    return first(status_refused(answer, 413), no_new_jobs(s, before), daemon_same(s))


# -- a job's escape attempts -------------------------------------------------------------------

def owner(path) -> int | None:
    """The uid owning ``path``; None when it is gone (a spare directory renamed away)."""
    try:
        return os.stat(path).st_uid
    except FileNotFoundError:
        return None


@attack("escape", "her job writes into the home, kills the daemon, signals bob's job", short=True, watchdog=True)
def a_escape(s: Scene) -> str | None:
    before = set(os.listdir(s.h.home)), set(os.listdir(s.h.path("jobs")))
    config = s.h.path("config.yaml").read_bytes()
    pids = s.bob_pids
    job = s.submit(ALICE, "--workdir", s.alice_dir, "--", s.python, s.escape_script, s.h.home, str(s.daemon_pid),
                   str(pids["job"]), str(pids["supervisor"]))
    end = s.wait_state(job, TERMINAL)
    text = s.log_of(job).strip().splitlines()
    try:
        out = json.loads(text[0])
    except (IndexError, ValueError):
        raise RuntimeError(f"the escape job {job} ({end['state']}: {end.get('message')}) wrote {text[:3]}") from None
    s.escaped = out
    done = [k for k, v in out.items() if v == "done"]
    if out.get("uid") != s.alice_uid or out.get("euid") != s.alice_uid:
        done.append(f"runs as uid {out.get('uid')}/{out.get('euid')}")
    if out.get("inherited descriptors"):
        done.append(f"inherited {out['inherited descriptors']}")
    after = set(os.listdir(s.h.home)), set(os.listdir(s.h.path("jobs")))
    # Job directories, and those the launcher makes ready for the next jobs, are corral's
    # (root's); anything else new there is what her job made.
    spares = {n for n in after[1] - before[1] if n.startswith(".spare-") and owner(s.h.path("jobs", n)) in (0, None)}
    new = (after[0] - before[0]) | {f"jobs/{n}" for n in after[1] - before[1] - spares if not n.isdigit()}
    if new:
        done.append(f"made {sorted(new)} in the home")
    if s.h.path("config.yaml").read_bytes() != config:
        done.append("changed config.yaml")
    why = first(daemon_same(s), bob_unchanged(s, "bob_run", state="Running"))
    if why:
        done.append(why)
    elif users.uid_of_pid(pids["job"]) is None or not alive(pids["job"]):
        done.append("bob's job process is gone")
    return "; ".join(done) if done else None


@attack("escape", "her job sets CUDA_VISIBLE_DEVICES to bob's GPUs", watchdog=True)
def a_gpu_env(s: Scene) -> str | None:
    wanted = {"CUDA_VISIBLE_DEVICES": "0,1,2,3", "NVIDIA_VISIBLE_DEVICES": "all", "CORRAL_GPUS": "0,1,2,3"}
    job = s.submit(ALICE, "--workdir", s.alice_dir, *(a for k, v in wanted.items() for a in ("--env", f"{k}={v}")),
                   "--", 'env | sed "s/^/env:/"')
    s.wait_state(job, TERMINAL)
    env = job_env(s.log_of(job))
    got = [f"{k}={env.get(k)}" for k, v in wanted.items() if env.get(k) != ""]
    return f"job {job} (no GPUs) runs with {', '.join(got)}" if got else None


def processes_of_job(s: Scene, job_id: int) -> list[int]:
    tag = f"CORRAL_JOB_ID={job_id}".encode()
    found = []
    for pid in s.h.processes():              # the job carries the home's marker (submit adds it)
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if tag in f.read().split(b"\0"):
                    found.append(pid)
        except OSError:
            continue
    return found


@attack("escape", "her job leaves a child in a session of its own that outlives it", watchdog=True)
def a_session_escape(s: Scene) -> str | None:
    job = s.submit(ALICE, "--workdir", s.alice_dir, "--",
                   "setsid sh -c 'exec sleep 300' </dev/null >/dev/null 2>&1 & "
                   "(trap '' TERM HUP; exec nohup sleep 301 </dev/null >/dev/null 2>&1) & sleep 0.5; exit 0")
    s.wait_state(job, TERMINAL)
    left = wait_for(lambda: not processes_of_job(s, job), timeout=15)
    if not left:
        pids = processes_of_job(s, job)
        return f"job {job} ended, its processes {pids} run on (uid {users.uid_of_pid(pids[0]) if pids else '?'})"
    return None


# -- the run -----------------------------------------------------------------------------------

def run(short: bool) -> Result:
    if not is_root():
        return Result(NAME, skipped="needs root (creates test users, runs a system-mode daemon as root)")
    try:
        users.ensure_users()
        s = Scene(short)
    except users.Unavailable as exc:
        return Result(NAME, skipped=str(exc))
    result = Result(NAME)
    tried: list[Tried] = []

    def attempt(a: Attack, suffix: str = "") -> None:
        try:
            why = a.fn(s)
        except Exception as exc:  # noqa: BLE001 - an attack that cannot be judged is a failure
            result.failures.append(f"{a.category}: {a.name}{suffix}: could not be carried out: {exc!r}"[:400])
            return
        if isinstance(why, Weak):
            result.failures.append(f"blocked, but not as it should be: {a.category}: {a.name}{suffix}: {why}"[:600])
        tried.append(Tried(a.category, a.name + suffix, why is None or isinstance(why, Weak), why or ""))

    control = None
    try:
        s.setup()
        for a in ATTACKS:
            if a.short or not short:
                attempt(a)
        check_the_end(s, result, "after all attacks")
        if not short:
            # The same escapes where no cgroup holds the job (enforcement: watchdog).
            s.restart("enforcement: watchdog\n")
            for a in ATTACKS:
                if a.watchdog:
                    attempt(a, " (watchdog)")
            check_the_end(s, result, "after the watchdog escapes")
            control = control_preemption(s)
    finally:
        s.teardown()
    succeeded = [t for t in tried if not t.blocked]
    result.figures["attacks tried"] = len(tried)
    result.figures["blocked"] = len(tried) - len(succeeded)
    result.figures["succeeded"] = ", ".join(t.name for t in succeeded) or "none"
    for category in dict.fromkeys(t.category for t in tried):
        mine = [t for t in tried if t.category == category]
        result.figures[f"  {category}"] = f"{sum(t.blocked for t in mine)}/{len(mine)} blocked"
    if control is not None:
        result.figures["control: an admin's urgent job preempts bob's"] = control
    for t in succeeded:
        result.failures.append(f"attack succeeded: {t.category}: {t.name}: {t.detail}"[:600])
    return result


def check_the_end(s: Scene, result: Result, when: str) -> None:
    """Bob's jobs and the daemon are as they were."""
    end = [daemon_same(s), bob_unchanged(s, "bob_run", state="Running", attempts=s.bob_view["attempts"],
                                         started_at=s.bob_view["started_at"]),
           bob_unchanged(s, "bob_pend", state="Pending", held=False, queue="default", priority=0)]
    if not s.short:
        end.append(bob_unchanged(s, "bob_held", state="Pending", held=True))
    tracebacks = s.h.daemon_log().count("Traceback")
    end.append(f"the daemon logged {tracebacks} tracebacks" if tracebacks else None)
    for line in filter(None, end):
        result.failures.append(f"{when}: {line}")


def control_preemption(s: Scene) -> str:
    """The priority attacks are not vacuous: an admin's urgent job does preempt bob's."""
    job = s.submit(ADMIN, "--gpus", "4", "--priority", "urgent", "--", "true")
    view = wait_for(lambda: (v := s.job(s.ids["bob_run"])) and (v["state"] != "Running" or v["attempts"] > 1) and v,
                    timeout=30)
    s.wait_state(job, TERMINAL, timeout=60)
    return f"yes (bob's job {view['state']})" if view else "no"


if __name__ == "__main__":
    from run import render

    print(render(run("--short" in sys.argv)))
