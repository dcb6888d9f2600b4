"""``corral run --pty``'s end of an interactive job's terminal.

Connects to the socket the job's supervisor listens on (:mod:`corral.executors.local.
ptyrelay`, which describes the messages), puts the local terminal in raw mode (keys,
Ctrl-C included, go to the job's terminal, which echoes and edits lines itself), and
relays: stdin to the job, the job's output to stdout, the window size at the start and
on every SIGWINCH. Returns when the job's side ends the stream (the job ended, or
closed its terminal); the local terminal is always restored.
"""

from __future__ import annotations

import _socket as socket
import os
import select
import signal

DATA = b"d"
WINSIZE = b"w"
CHUNK = 65536


def connect(path: str) -> socket.socket:
    """A connection to the terminal's socket; raises OSError (ENOENT or ECONNREFUSED while
    the supervisor is not listening yet)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    directory, name = os.path.split(path)
    cwd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.chdir(directory)              # a short name: sun_path holds 107 bytes
        sock.connect(name)
    except OSError:
        sock.close()
        raise
    finally:
        os.fchdir(cwd)
        os.close(cwd)
    return sock


def window_size(fd: int) -> tuple[int, int] | None:
    import fcntl
    import struct
    import termios

    try:
        rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    except OSError:
        return None
    return (rows, cols) if rows and cols else None


def winsize_message(rows: int, cols: int) -> bytes:
    import struct

    return WINSIZE + struct.pack("!HH", rows, cols)


class RawMode:
    """The local terminal in raw mode for the block; restored after (also by :meth:`restore`
    from a signal handler before an immediate exit)."""

    def __init__(self, fd: int = 0):
        self.fd = fd
        self.saved = None

    def __enter__(self) -> "RawMode":
        if os.isatty(self.fd):
            import termios
            import tty

            self.saved = termios.tcgetattr(self.fd)
            tty.setraw(self.fd, termios.TCSANOW)
        return self

    def restore(self) -> None:
        if self.saved is not None:
            import termios

            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)
            self.saved = None

    def __exit__(self, *exc) -> None:
        self.restore()


def relay(sock: socket.socket, stdin: int = 0, stdout: int = 1) -> None:
    """Relay until the job's side ends the stream."""
    term = stdout if os.isatty(stdout) else stdin

    def send_size(*_) -> None:
        size = window_size(term)
        if size is not None:
            try:
                sock.send(winsize_message(*size))
            except OSError:
                pass

    send_size()
    old = signal.signal(signal.SIGWINCH, send_size)
    reading = True
    try:
        while True:
            ready, _, _ = select.select([sock] + ([stdin] if reading else []), [], [])
            if stdin in ready:
                data = os.read(stdin, CHUNK)
                if not data:                        # stdin ended (not a terminal): an EOF key
                    reading = False
                    data = b"\x04"
                try:
                    sock.send(DATA + data)
                except OSError:
                    return
            if sock in ready:
                try:
                    data = sock.recv(CHUNK + 1)
                except OSError:
                    return
                if not data:
                    return
                view = memoryview(data)
                while view:
                    view = view[os.write(stdout, view):]
    finally:
        signal.signal(signal.SIGWINCH, old)
