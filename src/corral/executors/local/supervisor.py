"""The per-job supervisor: a forked copy of the daemon that outlives it.

Why: a job must survive the daemon being killed (SIGKILL, crash, upgrade) and its exit
code must still be known afterwards. A job's parent is the only process that can read
its exit status, so the parent must not be the daemon. Like containerd's shim or
Slurm's slurmstepd, each job gets a small supervisor that:

1. holds an exclusive ``flock`` on ``<jobdir>/state`` for its whole life (taken by the
   launcher *before* the fork and inherited, so there is no window where the job runs
   unlocked). A restarted daemon that cannot take the lock knows the supervisor lives;
2. starts its own session, pins itself to the job's cores, changes to the workdir and
   spawns the job with ``posix_spawn`` in a new session of its own (so the job's process
   group can be signalled as a whole), stdout/stderr to the job's log files;
3. appends its own and the job's pid to ``state``, then waits. SIGTERM from the daemon is
   forwarded to the job's process group, followed by SIGKILL after the grace period; when
   the job's main process ends, everything else the job started is killed: its process
   group, its cgroup (limits, or a cgroup v2 group made only to hold the job), and what
   was reparented to the supervisor, which is the job's subreaper
   (``PR_SET_CHILD_SUBREAPER``): a child in a session of its own or a daemon the job
   started comes to it, not to init, and is killed with it;
4. appends the exit code or signal and the end time to ``state``, then exits.

The ``state`` file is the job's lock and its record at once, two lines appended in turn::

    pids SUPERVISOR_PID JOB_PID JOB_START_TICKS
    status {"exit_code": 0, "ended_at": ...}

One file instead of a lock, a pid file and a status file written through temporary
names: creating a file is the costly part of a short job's start (an inode allocated;
0.3 ms and more each on an ext4 without a journal, measured here). An appended line is
seen whole or not at all by a reader (the file's size grows after the bytes are in
place), and the status is only read once the lock is free (the supervisor is gone), so
a line without its newline is one the supervisor did not finish: the job is lost.

With a cgroup (``cgroup`` argument: what :mod:`corral.executors.local.cgroups` needs), the
supervisor creates the job's cgroup with its limits before starting it, starts the job
*inside* it (fork, join the cgroup, exec: the job never runs a moment outside it), and
after the job ends reads the cgroup's OOM-kill count, peak memory and CPU time into the
status, kills whatever is left in the cgroup and removes it. A cgroup that cannot be
created fails the launch: a job never runs with its limits silently dropped.

With a user (``uid``/``gid``/``user``: a root daemon in system mode), the supervisor
stays root (its job directory is root's, 0700) but gives the log files to the user
(0600: readable by them only), and the job's process becomes the user between fork and
exec (supplementary groups, gid, uid), then enters the working directory and looks
up the command with the user's own rights (never root's, which would tell what exists
where only root may look): one the user cannot enter fails the launch, saying so.

A stop (SIGTERM from the daemon) sends the job's own stop signal (``stop_signal``,
SIGTERM unless the job asked for e.g. SIGUSR1 to checkpoint) to its process group, then
SIGKILL after the grace period.

The supervisor is made with ``os.fork()`` and never returns to the daemon's code: it
uses only plain system calls, so it is safe even though the parent has other state.
Forking (instead of starting a new interpreter) keeps the launch cost around a
millisecond. The launcher keeps the supervisors it forks (:func:`serve`): when a job
ended and its end is on disk, the supervisor tells the launcher and takes the next job
it is handed, one job at a time -- the fork, its copied pages and its exit are paid
once, not per job, and a supervisor that dies still costs only the job it ran.
"""

from __future__ import annotations

import errno
import fcntl
import gc
import os
import signal
import time

from ... import fastjson as json
from ..logheaders import attempt_header

STATE = "state"        # the lock, then "pids ..." once the job runs, then "status {...}"
STOP = "stop"
STDOUT = "stdout.log"
STDERR = "stderr.log"

_FORWARDED = (signal.SIGUSR1, signal.SIGUSR2)
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
#: Blocked from before the supervisor's fork until it waits for them on purpose.
HELD_SIGNALS = _STOP_SIGNALS + _FORWARDED


def proc_start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (``/proc/PID/stat`` field 22)."""
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        data = os.read(fd, 4096)
    except OSError:
        return None
    finally:
        os.close(fd)
    try:
        return int(data[data.rindex(b")") + 2:].split()[19])
    except (ValueError, IndexError):
        return None


def write_atomic(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)
    os.rename(tmp, path)


#: Errors of a file system that may get better (full, over quota, read-only for now):
#: the exit status is kept and written again until it is on disk.
_PASSING = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EAGAIN, errno.ENOMEM})
STATUS_RETRY = 1.0


def append_line(fd: int, line: bytes) -> None:
    """Append one line to the state file open (``O_APPEND``) on ``fd``; a short write on a
    full disk is cut off again before the error is raised, so the file never holds half a
    line written by this call."""
    start = os.lseek(fd, 0, os.SEEK_END)
    try:
        view = memoryview(line)
        while view:
            view = view[os.write(fd, view):]
    except OSError:
        try:
            os.ftruncate(fd, start)
        except OSError:
            pass
        raise


def write_status(fd: int, data: bytes, retry: float = STATUS_RETRY) -> bool:
    """Append the exit status to the state file on ``fd``, trying again every ``retry``
    seconds while the disk is full or read-only: a job's exit code is never lost to a
    passing store fault (the supervisor lives on until it is written, so the daemon
    still sees the job as ending). Gives up only on another error (False)."""
    line = b"status " + data + b"\n"
    while True:
        try:
            append_line(fd, line)
            return True
        except OSError as exc:
            if exc.errno not in _PASSING:
                return False
        time.sleep(retry)


class State:
    """What a job's ``state`` file says: the pids once the job started, the status once
    it ended; ``damaged`` when it holds what no supervisor writes."""

    __slots__ = ("supervisor", "job", "start", "status", "damaged")

    def __init__(self) -> None:
        self.supervisor: int | None = None
        self.job: int | None = None
        self.start: int | None = None       # the job's start time in clock ticks
        self.status: dict | None = None
        self.damaged = False


def parse_state(data: bytes) -> State:
    state = State()
    for line in data.split(b"\n")[:-1]:          # a last line without its newline is unfinished
        kind, _, rest = line.partition(b" ")
        try:
            if kind == b"pids":
                sup_s, job_s, start_s = rest.split()
                state.supervisor, state.job = int(sup_s), int(job_s)
                state.start = None if start_s == b"None" else int(start_s)
            elif kind == b"status":
                status = json.loads(rest)
                if not isinstance(status, dict):
                    raise ValueError("not an object")
                state.status = status
            else:
                state.damaged = True
        except ValueError:
            state.damaged = True
    return state


def read_state(jobdir: str) -> State | None:
    """The job's state file, parsed; None when it does not exist."""
    try:
        fd = os.open(os.path.join(jobdir, STATE), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    return parse_state(read_all(fd))


def read_all(fd: int) -> bytes:
    """Everything left to read on ``fd``, which is closed afterwards."""
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def open_state(jobdir: str) -> int:
    """Create a job's directory (or clear what an earlier attempt left in it) and take
    its lock: the state file's descriptor (``O_APPEND``), emptied once it is locked.
    Raises BlockingIOError when a live supervisor holds it, OSError otherwise."""
    try:
        os.mkdir(jobdir, 0o700)
        fresh = True
    except FileExistsError:
        fresh = False
    fd = os.open(os.path.join(jobdir, STATE), os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if not fresh:
            os.ftruncate(fd, 0)
            try:
                os.unlink(os.path.join(jobdir, STOP))
            except FileNotFoundError:
                pass
    except BaseException:
        os.close(fd)
        raise
    return fd


def _resolve(argv0: str, env: dict[str, str]) -> str | None:
    if "/" in argv0:
        return argv0 if os.access(argv0, os.X_OK) and not os.path.isdir(argv0) else None
    for d in env.get("PATH", os.defpath).split(os.pathsep):
        cand = os.path.join(d or ".", argv0)
        if os.access(cand, os.X_OK) and not os.path.isdir(cand):
            return cand
    return None


def supervise(jobdir: str, argv: list[str], env: dict[str, str], workdir: str,
              cores: tuple[int, ...] | None, grace: float, keep_fd: int,
              stop_signal: int = signal.SIGTERM, cgroup: dict | None = None, *,
              uid: int | None = None, gid: int | None = None, user: str = "", pty: str | None = None) -> None:
    """Body of a forked supervisor for one job. Never returns: ends with ``os._exit``.

    ``uid``/``gid``/``user``: run the job as that user (the supervisor stays root).
    ``pty``: an interactive job: its terminal's socket (:mod:`.ptyrelay`)."""
    try:
        _become_supervisor((keep_fd,))
        run_job(jobdir, argv, env, workdir, cores, grace, keep_fd, stop_signal, cgroup,
                uid=uid, gid=gid, user=user, pty=pty)
    finally:
        os._exit(0)


#: A supervisor the launcher keeps runs at most this many jobs, then exits.
REUSE_LIMIT = 1000


def serve(sock, request: dict, keep_fd: int) -> None:  # pragma: no cover - runs in a forked supervisor
    """Body of a supervisor the launcher keeps: run ``request``, then, while the launcher
    is there, tell it the job ended and run the next one it hands over (the request and
    the state file's locked descriptor, as ``SCM_RIGHTS``). A fork, its pages copied on
    first write and its exit's teardown cost ~2.5 ms a job here; one supervisor per job
    at a time keeps what a supervisor's death costs to that one job. Never returns."""
    import socket as _socket

    try:
        _become_supervisor((keep_fd, sock.fileno()))
        cpus = os.sched_getaffinity(0)
        done = 0
        while True:
            done += 1
            run_job(request["jobdir"], request["argv"], request["env"], request["workdir"],
                    tuple(request["cores"]) if request["cores"] else None, float(request["grace"]), keep_fd,
                    int(request.get("stop_signal") or signal.SIGTERM), request.get("cgroup"),
                    uid=request.get("uid"), gid=request.get("gid"), user=request.get("user") or "",
                    pty=request.get("pty"), reused=done > 1)
            os.close(keep_fd)                      # the lock: the job is over
            if request.get("pty") is not None or done >= REUSE_LIMIT:
                return                             # its terminal's thread: not run again
            try:
                sock.send(json.dumps({"ended": request["job"]}).encode())
                data, fds, _, _ = _socket.recv_fds(sock, 4 << 20, 1)
            except OSError:
                return                             # the launcher is gone: so is its daemon
            if not data or not fds:
                return
            keep_fd = fds[0]
            os.set_inheritable(keep_fd, False)     # SCM_RIGHTS gives it without close-on-exec
            for extra in fds[1:]:
                os.close(extra)
            request = json.loads(data)
            _discard_pending()                     # a stop meant for the last job
            try:
                os.sched_setaffinity(0, cpus)
                os.chdir("/")
            except OSError:
                pass
    finally:
        os._exit(0)


def _become_supervisor(keep: tuple[int, ...]) -> None:
    """Once per supervisor process: its own session, nothing inherited it does not need."""
    gc.disable()                # short-lived and cycle-free: a collection would only copy pages
    os.setsid()
    if os.isatty(2) or os.isatty(1) or os.isatty(0):
        null_stdio()
    _close_fds(keep)
    for sig in _STOP_SIGNALS + _FORWARDED + (signal.SIGCHLD,):
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS + _FORWARDED + (signal.SIGCHLD,))


def _discard_pending() -> None:
    waitset = _STOP_SIGNALS + _FORWARDED
    while signal.sigtimedwait(waitset, 0) is not None:
        pass


def run_job(jobdir: str, argv: list[str], env: dict[str, str], workdir: str,
            cores: tuple[int, ...] | None, grace: float, keep_fd: int,
            stop_signal: int = signal.SIGTERM, cgroup: dict | None = None, *,
            uid: int | None = None, gid: int | None = None, user: str = "", pty: str | None = None,
            reused: bool = False) -> None:
    """Run one job to its end and record it in its state file (``keep_fd``, locked).

    ``reused``: this supervisor ran a job before, so a stop signal counts only when the
    daemon asked to stop this job (its ``stop`` file, written before any signal); a late
    one meant for the last job is ignored."""
    status: dict = {}
    group = None
    term = None
    try:
        if cgroup is not None:
            group = _make_cgroup(cgroup, status)
        # What the job leaves behind outside its process group (a child in a session of
        # its own, a daemon it started) is reparented here, not to init, so it is found
        # and killed when the job ends (its cgroup, where it has one, holds it as well).
        reaper = _become_subreaper()
        if (cgroup is None or group is not None) and pty is not None:
            term = _terminal(pty, uid, gid, status)
        if (cgroup is None or group is not None) and (pty is None or term is not None):
            pid = _spawn(jobdir, argv, env, workdir, cores, status, group, _switch_to(uid, gid, user),
                         tty=term.slave if term is not None else None)
            if pid is not None:
                append_line(keep_fd, f"pids {os.getpid()} {pid} {proc_start_time(pid)}\n".encode())
                if term is not None:
                    term.started(pid, os.path.join(jobdir, STDOUT))
                _wait(pid, grace, status, stop_signal, reaper, os.path.join(jobdir, STOP) if reused else None)
                if term is not None:
                    term.finish()
            elif term is not None:
                term.abandon()
    except BaseException as exc:  # noqa: BLE001 - the supervisor must always write a status
        status.setdefault("launch_error", f"supervisor error: {exc!r}")
    finally:
        if group is not None:
            _close_cgroup(group, status)
        status["ended_at"] = time.time()
        write_status(keep_fd, json.dumps(status).encode())


def _append_header(fd: int, header: bytes) -> None:
    """The header on a line of its own, after whatever the last attempt wrote."""
    try:
        size = os.fstat(fd).st_size
        last = os.pread(fd, 1, size - 1) if size else b"\n"
    except OSError:
        last = b"\n"
    try:
        os.write(fd, header if last == b"\n" else b"\n" + header)
    except OSError:
        pass                      # a full disk: the job runs without its header


def _terminal(path: str, uid: int | None, gid: int | None, status: dict):
    """An interactive job's pty and its socket, or None (a launch error) when they cannot be made."""
    from .ptyrelay import Terminal

    try:
        return Terminal(path, uid, gid)
    except OSError as exc:
        status["launch_error"] = f"cannot make the job's terminal at {path}: {exc.strerror or exc}"
        return None


def _make_cgroup(spec: dict, status: dict):
    from .cgroups import CgroupError, CgroupSupport, JobCgroup, Limits

    group = JobCgroup(CgroupSupport.from_dict(spec["support"]), spec["key"])
    try:
        group.create(Limits.from_dict(spec["limits"]))
    except (CgroupError, OSError) as exc:
        status["launch_error"] = f"cannot create the job's cgroup: {exc}"
        return None
    return group


def _close_cgroup(group, status: dict) -> None:
    """Read what the kernel counted for the job, then kill what is left and remove it. A
    failure is recorded beside the exit status, never instead of it (a group left
    behind is removed by the daemon's next sweep)."""
    try:
        stats = group.stats()
        status["oom_kills"] = stats.oom_kills
        status["memory_peak"] = stats.memory_peak
        status["memory_limit"] = stats.memory_limit
        if stats.cpu_usage_ns is not None:
            status["cpu_seconds"] = stats.cpu_usage_ns / 1e9
    except Exception as exc:  # noqa: BLE001 - the exit status comes first
        status["cgroup_error"] = f"cannot read the job's cgroup: {exc}"
    try:
        group.remove()
    except Exception as exc:  # noqa: BLE001
        status["cgroup_error"] = f"cannot remove the job's cgroup: {exc}"


class _User:
    """Whom the job runs as when that is not the supervisor's own user (a plain class:
    the launcher imports this module and stays small, without ``typing``)."""

    __slots__ = ("uid", "gid", "groups", "name")

    def __init__(self, uid: int, gid: int, groups: list[int], name: str):
        self.uid, self.gid, self.groups, self.name = uid, gid, groups, name


def _switch_to(uid: int | None, gid: int | None, user: str) -> _User | None:
    """The user to switch to between fork and exec; None: stay who we are. The
    supplementary groups are looked up here, before the fork (NSS in a forked child of
    a threaded process is not safe)."""
    if uid is None or uid == os.geteuid():
        return None
    gid = uid if gid is None else gid
    name = user or str(uid)
    try:
        groups = os.getgrouplist(name, gid)
    except OSError:
        groups = [gid]
    return _User(uid, gid, groups, name)


def _spawn(jobdir: str, argv: list[str], env: dict[str, str], workdir: str,
           cores: tuple[int, ...] | None, status: dict, group=None, user: _User | None = None,
           tty: int | None = None) -> int | None:
    # A job of another user enters its workdir and finds its command as that user (in
    # _fork_into): looked up as root, the answers would tell what exists where only root may look.
    if user is None:
        try:
            os.chdir(workdir)
        except OSError as exc:
            status["launch_error"] = f"working directory {workdir}: {exc.strerror}"
            return None
    if cores:
        try:
            os.sched_setaffinity(0, cores)
        except OSError as exc:
            status["launch_error"] = f"cannot pin to cores {list(cores)}: {exc.strerror}"
            return None
    path = _resolve(argv[0], env) if user is None else argv[0]
    if path is None:
        status["launch_error"] = f"command not found or not executable: {argv[0]}"
        status["exit_code"] = 127
        return None
    flags = os.O_RDWR | os.O_CREAT | os.O_APPEND      # read: the last byte, before a header
    out = os.open(os.path.join(jobdir, STDOUT), flags, 0o600)
    err = os.open(os.path.join(jobdir, STDERR), flags, 0o600)
    try:
        attempt = env.get("CORRAL_ATTEMPT", "")
        if attempt.isdigit() and int(attempt) > 1:
            header = attempt_header(int(attempt), time.time(), env.get("CORRAL_NODE", ""))
            for fd in (out, err):
                _append_header(fd, header)
        if user is not None:
            try:   # the logs are the job's user's, readable by them only (0600)
                os.fchown(out, user.uid, user.gid)
                os.fchown(err, user.uid, user.gid)
            except OSError as exc:
                status["launch_error"] = f"cannot give the log files to user {user.name}: {exc.strerror}"
                return None
        if user is not None or tty is not None:
            # posix_spawn can neither change user nor take a controlling terminal: fork,
            # set up, exec.
            return _fork_into(group, path, argv, env, out, err, status, user, workdir, tty)
        if group is None:
            return _posix_spawn(path, argv, env, out, err)
        # The job must never run a moment outside its cgroup. A fork of this process to
        # join it costs ~3 ms (the copy, then its exit's teardown); instead the supervisor
        # joins the group itself, spawns the job there (vfork-like: it is born inside) and
        # goes back where it was: two moves, ~0.1 ms each.
        from .cgroups import CgroupError

        try:
            group.attach(0)
        except CgroupError as exc:
            status["launch_error"] = f"cannot join the job's cgroup: {exc}"
            _leave(group, status)
            return None
        try:
            return _posix_spawn(path, argv, env, out, err)
        finally:
            _leave(group, status)
    except OSError as exc:
        status["launch_error"] = f"cannot execute {argv[0]}: {exc.strerror}"
        status["exit_code"] = 126 if exc.errno in (errno.EACCES, errno.ENOEXEC) else 127
        return None
    finally:
        os.close(out)
        os.close(err)


def _posix_spawn(path: str, argv: list[str], env: dict[str, str], out: int, err: int) -> int:
    return os.posix_spawn(
        path, argv, env,
        file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, out, 1),
            (os.POSIX_SPAWN_DUP2, err, 2),
        ],
        setsid=True,
        setsigmask=(),
        setsigdef=[s for s in signal.valid_signals() if s not in (signal.SIGKILL, signal.SIGSTOP)],
    )


def _leave(group, status: dict) -> None:
    """Back out of the job's cgroup (tried a few times: the supervisor must not stay in
    what it will kill and remove)."""
    from .cgroups import CgroupError

    for _ in range(3):
        try:
            group.leave()
            return
        except CgroupError as exc:
            error = exc
            time.sleep(0.01)
    status["cgroup_error"] = f"the supervisor could not leave the job's cgroup: {error}"


def _fork_into(group, path: str, argv: list[str], env: dict[str, str], out: int, err: int,
               status: dict, user: _User | None = None, workdir: str = "", tty: int | None = None) -> int | None:
    """Start the job: fork, join ``group`` (if any), take ``tty`` (if any) as controlling
    terminal and stdio, become ``user`` (if any: groups, gid, uid, then enter ``workdir``
    with the user's own rights), exec. A close-on-exec
    pipe tells the supervisor whether the exec happened (EOF) or why it did not."""
    rfd, wfd = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the job's process, between fork and exec
        stage = "cgroup"
        try:
            os.close(rfd)
            if group is not None:
                group.attach(0)
            stage = "setup"
            os.setsid()
            if tty is not None:
                from .ptyrelay import attach

                attach(tty)
            else:
                null = os.open(os.devnull, os.O_RDONLY)
                os.dup2(null, 0)
                os.dup2(out, 1)
                os.dup2(err, 2)
            if user is not None:
                stage = "user"
                os.setgroups(user.groups)
                os.setgid(user.gid)
                os.setuid(user.uid)
                stage = "workdir"
                os.chdir(workdir)
                stage = "command"
                found = _resolve(argv[0], env)       # with the user's rights, in the workdir
                if found is None:
                    raise FileNotFoundError(errno.ENOENT, "command not found or not executable")
                path = found
            stage = "exec"
            for sig in signal.valid_signals():
                if sig not in (signal.SIGKILL, signal.SIGSTOP):
                    try:
                        signal.signal(sig, signal.SIG_DFL)
                    except (OSError, ValueError):
                        pass
            signal.pthread_sigmask(signal.SIG_SETMASK, ())
            os.execve(path, argv, env)
        except BaseException as exc:  # noqa: BLE001 - report and leave, never return
            code = getattr(exc, "errno", None) or 0
            text = getattr(exc, "strerror", None) or repr(exc)
            try:
                os.write(wfd, f"{stage} {code} {text}".encode())
            finally:
                os._exit(127)
    os.close(wfd)
    why = read_all(rfd)                     # EOF at once: the exec happened
    if not why:
        return pid
    os.waitpid(pid, 0)
    stage, _, rest = why.decode(errors="replace").partition(" ")
    code, _, text = rest.partition(" ")
    if stage == "cgroup":
        status["launch_error"] = f"cannot join the job's cgroup: {text}"
    elif stage == "setup":
        status["launch_error"] = f"cannot start {argv[0]}: {text}"
    elif stage == "user" and user is not None:
        status["launch_error"] = f"cannot run as user {user.name} (uid {user.uid}): {text}"
    elif stage == "workdir" and user is not None:
        status["launch_error"] = f"working directory {workdir} is not accessible to user {user.name}: {text}"
    elif stage == "command":
        status["launch_error"] = f"command not found or not executable: {argv[0]}"
        status["exit_code"] = 127
    else:
        where = (" in its cgroup" if group is not None else "") + (f" as user {user.name}" if user else "")
        status["launch_error"] = f"cannot execute {argv[0]}{where}: {text}"
        status["exit_code"] = 126 if code in (str(errno.EACCES), str(errno.ENOEXEC)) else 127
    return None


def _wait(pid: int, grace: float, status: dict, stop_signal: int = signal.SIGTERM, reaper: bool = False,
          stop_file: str | None = None) -> None:
    kill_at: float | None = None
    waitset = _STOP_SIGNALS + _FORWARDED + (signal.SIGCHLD,)
    while True:
        code = _reap(pid) if reaper else _reap_one(pid)
        if code is not None:
            if os.WIFSIGNALED(code):
                status["signal"] = os.WTERMSIG(code)
            else:
                status["exit_code"] = os.waitstatus_to_exitcode(code)
            # The job ends with its main process: what it left behind in its process
            # group (background children) is killed too, so nothing keeps holding the
            # allocation (Slurm does the same at the end of a step) -- and, as a
            # subreaper, whatever left the group.
            _killpg(pid, signal.SIGKILL)
            if reaper:
                _kill_orphans()
            return
        timeout = None if kill_at is None else max(kill_at - time.monotonic(), 0.0)
        info = signal.sigtimedwait(waitset, 3600.0 if timeout is None else timeout)
        if info is None:                        # grace period over
            if kill_at is not None:
                _killpg(pid, signal.SIGKILL)
                kill_at = None
            continue
        sig = info.si_signo
        if sig in _STOP_SIGNALS and stop_file is not None and not os.path.exists(stop_file):
            continue                            # not for this job: the last one's, late
        if sig in _STOP_SIGNALS:
            status["stop_signal"] = signal.Signals(sig).name
            status["sent"] = signal.Signals(stop_signal).name
            _killpg(pid, stop_signal)
            if kill_at is None:
                kill_at = time.monotonic() + grace
        elif sig in _FORWARDED:
            _killpg(pid, sig)


def _reap_one(pid: int) -> int | None:
    done, code = os.waitpid(pid, os.WNOHANG)
    return code if done else None


def _reap(pid: int) -> int | None:
    """Reap every child that has ended (orphans of the job come here as a subreaper);
    the wait status of ``pid`` when it is among them."""
    main = None
    while True:
        try:
            done, code = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return main
        if not done:
            return main
        if done == pid:
            main = code


#: prctl(2) option: orphaned descendants are reparented to this process, not to init.
PR_SET_CHILD_SUBREAPER = 36


_prctl: list = []


def load_prctl():
    """libc's ``prctl`` (None where it cannot be had), loaded once: the launcher loads it
    for all the supervisors it forks (importing ctypes costs a few ms)."""
    if not _prctl:
        try:
            import ctypes

            fn = ctypes.CDLL(None, use_errno=True).prctl
            _prctl.append((fn, ctypes.c_ulong))
        except (OSError, AttributeError):
            _prctl.append(None)
    return _prctl[0]


def _become_subreaper() -> bool:
    loaded = load_prctl()
    if loaded is None:
        return False
    fn, ulong = loaded
    return fn(PR_SET_CHILD_SUBREAPER, ulong(1), ulong(0), ulong(0), ulong(0)) == 0


def _children() -> list[int]:
    """This process's living children: one read of ``/proc/self/task/PID/children``
    (zombies are left to :func:`_reap`), or a scan of ``/proc`` where the kernel lacks it."""
    me = os.getpid()
    try:
        fd = os.open(f"/proc/self/task/{me}/children", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return _children_by_scan(me)
    data = read_all(fd)
    return [pid for pid in map(int, data.split()) if not _is_zombie(pid)]


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return True
    return data[data.rindex(b")") + 2:data.rindex(b")") + 3] in (b"Z", b"X")


def _children_by_scan(me: int) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        fields = data[data.rindex(b")") + 2:].split()
        if len(fields) > 1 and fields[0] not in (b"Z", b"X") and int(fields[1]) == me:
            found.append(int(name))
    return found


def _kill_orphans(rounds: int = 200) -> None:
    """SIGKILL what is left of the job among this subreaper's children, round after
    round (the children of one killed are reparented here in turn), and reap them."""
    for _ in range(rounds):
        _reap(-1)
        left = _children()
        if not left:
            return
        for child in left:
            try:
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.01)


def _killpg(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def _close_fds(keep: tuple[int, ...]) -> None:
    """Close every inherited descriptor but stdio and ``keep`` (the lock, the launcher's
    socket); close_range(2) when the kernel has it: one system call per range."""
    low = 3
    for fd in sorted(keep):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, os.sysconf("SC_OPEN_MAX"))


def null_stdio() -> None:
    """Point stdin/stdout/stderr at /dev/null (the launcher does it once for all the
    supervisors it forks; jobs get their own log files)."""
    fd = os.open(os.devnull, os.O_RDWR)
    for target in (0, 1, 2):
        os.dup2(fd, target)
    if fd > 2:
        os.close(fd)
