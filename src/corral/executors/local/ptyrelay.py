"""The terminal of an interactive job (``spec.pty``), on the supervisor's side.

``corral run --pty`` needs the job's process on a pseudo-terminal that the user's own
terminal is connected to, while the job is still started by its supervisor like any
other (its cgroup, cores, GPUs, user and limits). So the supervisor, before it starts the
job, opens a pty pair and listens on a Unix socket (``$CORRAL_HOME/pty/<id>.sock``); the
job gets the pty's slave as its controlling terminal and stdin/stdout/stderr; a thread
of the supervisor relays between the pty's master and the one client that connects:

* the socket is ``SOCK_SEQPACKET`` (one message per send). Client to job: ``d`` + bytes
  typed, ``w`` + rows and columns (network order, two unsigned shorts) for the window
  size, applied with ``TIOCSWINSZ`` (the job gets SIGWINCH). Job to client: the bytes
  the job wrote; end of stream when the job's terminal is closed or the job has ended;
* who may connect: the socket is created ``0600`` and given to the job's user, in a
  directory that is ``0711`` under a root daemon (others can reach a name, not list
  them), and each peer's ``SO_PEERCRED`` uid must be the job's user (or root): in system
  mode nobody else can type into someone's shell;
* nothing is read from the master before a client is there (the job waits on a full
  terminal, as on a real one, and its first prompt is not lost); what it writes is also
  appended to its ``stdout.log`` (``corral logs`` shows a Jupyter URL);
* one client: once it is connected the socket's name is removed. One that never comes
  (its ``corral run`` was killed while the job waited) is waited for ``ATTACH_TIMEOUT``,
  then the terminal hangs up: an abandoned shell does not hold its GPUs forever. When
  the client goes away (its terminal closed, the CLI killed), the terminal hangs up, as a terminal does
  when an ssh connection drops: the master is closed and the job's process group gets
  SIGHUP (Slurm's ``srun --pty`` does the same), so a shell ends and the allocation is
  released;
* when the job ends, what it wrote last is sent, and the client sees the end of the
  stream; the exit code comes from the daemon as for any job.

Only plain system calls and a ``_thread`` (no ``threading``): the supervisor is small.
"""

from __future__ import annotations

import _thread
import errno
import fcntl
import os
import select
import signal
import socket
import struct
import termios
import time

DATA = b"d"
WINSIZE = b"w"
#: The largest message either side sends (a read of the master, or typed bytes).
CHUNK = 65536
#: Seconds a started job's terminal waits for its client before it hangs up.
ATTACH_TIMEOUT = 300.0


class Terminal:
    """A job's pty pair and the socket its client connects to (made before the job starts)."""

    def __init__(self, path: str, uid: int | None = None, gid: int | None = None,
                 attach_timeout: float = ATTACH_TIMEOUT):
        self.path = path
        self.attach_timeout = attach_timeout
        self.allowed = {0, os.geteuid()} | ({uid} if uid is not None else set())
        self.master, self.slave = os.openpty()
        if uid is not None and uid != os.geteuid():
            # The job may open its terminal again by name (/dev/pts/N), as its own user.
            os.fchown(self.slave, uid, -1)
            os.fchmod(self.slave, 0o620)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        directory, name = os.path.split(path)
        for stale in (path, path + ".new"):      # an earlier attempt's
            try:
                os.unlink(stale)
            except FileNotFoundError:
                pass
        old = os.umask(0o177)                    # 0600 from the start: no moment open to others
        cwd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.chdir(directory)                  # a short name: sun_path holds 107 bytes
            # Made under a name of its own and renamed once it is the user's and listens:
            # a client never meets it half made (root's, or not yet listening).
            self.listener.bind(name + ".new")
            if uid is not None and uid != os.geteuid():
                os.chown(name + ".new", uid, -1 if gid is None else gid)
            self.listener.listen(4)
            os.rename(name + ".new", name)
        finally:
            os.fchdir(cwd)
            os.close(cwd)
            os.umask(old)
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC)
        self._done = _thread.allocate_lock()
        self._log = -1
        self._pid = 0

    # supervisor side -------------------------------------------------------------------
    def started(self, pid: int, log_path: str) -> None:
        """The job runs (``pid``, its process group): relay from now on."""
        os.close(self.slave)                     # the job holds it; its end is EIO on the master
        self.slave = -1
        self._pid = pid
        try:
            self._log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        except OSError:
            self._log = -1
        self._done.acquire()
        _thread.start_new_thread(self._run, ())

    def finish(self, timeout: float = 5.0) -> None:
        """The job has ended: send what it wrote last, end the client's stream."""
        if self._pid:
            os.write(self._wake_w, b"x")
            if self._done.acquire(timeout=timeout):
                self._done.release()
        else:
            self._close()

    def abandon(self) -> None:
        """The job never started: remove the socket, close everything."""
        if self.slave >= 0:
            os.close(self.slave)
            self.slave = -1
        self._close()

    # the relay thread ------------------------------------------------------------------
    def _run(self) -> None:
        try:
            conn = self._accept()
            if conn is None:
                if self._wake_r not in select.select([self._wake_r], [], [], 0)[0]:
                    self._hangup()               # nobody came: the job must not wait forever
                self._drain(None)
            else:
                try:
                    self._relay(conn)
                finally:
                    conn.close()
        except Exception:  # noqa: BLE001 - the relay must never take the supervisor down
            pass
        finally:
            self._close()
            self._done.release()

    def _accept(self) -> socket.socket | None:
        """The one client, whose uid is allowed; None when the job ended first or nobody
        came in time."""
        deadline = time.monotonic() + self.attach_timeout
        while True:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.listener, self._wake_r], [], [], max(left, 0.0))
            if self._wake_r in ready or not ready:
                return None
            try:
                conn, _ = self.listener.accept()
            except OSError:
                continue
            creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            _, uid, _ = struct.unpack("3i", creds)
            if uid not in self.allowed:
                conn.close()
                continue
            self._unlisten()
            return conn

    def _relay(self, conn: socket.socket) -> None:
        master = self.master
        os.set_blocking(master, False)
        pending = b""                            # typed, not yet taken by the terminal
        while True:
            readable = [master, self._wake_r] + ([conn] if len(pending) < 4 * CHUNK else [])
            ready, writable, _ = select.select(readable, [master] if pending else [], [])
            if self._wake_r in ready:
                self._drain(conn)
                return
            if master in ready:
                try:
                    data = os.read(master, CHUNK)
                except BlockingIOError:
                    data = None
                except OSError:
                    data = b""                   # EIO: nothing holds the terminal any more
                if data == b"":
                    return
                if data:
                    self._out(conn, data)
            if conn in ready:
                msg = conn.recv(CHUNK + 1)
                if not msg:
                    self._hangup()
                    return
                if msg[:1] == DATA:
                    pending += msg[1:]
                elif msg[:1] == WINSIZE and len(msg) >= 5:
                    rows, cols = struct.unpack("!HH", msg[1:5])
                    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
            if pending and master in writable:
                try:
                    pending = pending[os.write(master, pending):]
                except BlockingIOError:
                    pass

    def _drain(self, conn: socket.socket | None) -> None:
        """What the job wrote before it ended (until EIO, or nothing comes for a moment)."""
        if self.master < 0:
            return
        os.set_blocking(self.master, False)
        while True:
            ready, _, _ = select.select([self.master], [], [], 0.5)
            if not ready:
                return
            try:
                data = os.read(self.master, CHUNK)
            except BlockingIOError:
                continue
            except OSError:
                return
            if not data:
                return
            self._out(conn, data)

    def _out(self, conn: socket.socket | None, data: bytes) -> None:
        if self._log >= 0:
            try:
                os.write(self._log, data)
            except OSError:
                pass
        if conn is not None:
            try:
                conn.sendall(data)
            except OSError as exc:
                if exc.errno not in (errno.EPIPE, errno.ECONNRESET):
                    raise

    def _hangup(self) -> None:
        """The client is gone: hang the terminal up, as when a connection drops."""
        self._close_master()
        try:
            os.killpg(self._pid, signal.SIGHUP)
        except (ProcessLookupError, PermissionError):
            pass

    # cleanup ---------------------------------------------------------------------------
    def _unlisten(self) -> None:
        if self.listener.fileno() >= 0:
            self.listener.close()
            try:
                os.unlink(self.path)
            except OSError:
                pass

    def _close_master(self) -> None:
        if self.master >= 0:
            os.close(self.master)
            self.master = -1

    def _close(self) -> None:
        self._unlisten()
        self._close_master()
        if self._log >= 0:
            os.close(self._log)
            self._log = -1


def attach(tty: int) -> None:
    """In the job's process, after ``setsid``: ``tty`` becomes its controlling terminal and
    its stdin, stdout and stderr."""
    fcntl.ioctl(tty, termios.TIOCSCTTY, 0)
    for target in (0, 1, 2):
        os.dup2(tty, target)
