"""``corral top``'s keyboard: ``q`` quits, any other key or a resize redraws at once.

When stdin is a terminal it is put in cbreak mode (keys arrive one by one, unechoed;
Ctrl-C still interrupts) for the block and restored after, also on an error. Waiting
between frames is a ``select`` on stdin and on a pipe SIGWINCH wakes, so nothing blocks
and no key is read late.
"""

from __future__ import annotations

import os
import select
import signal


class Keys:
    def __init__(self, stream):
        try:
            fd = stream.fileno()
        except (AttributeError, OSError, ValueError):
            fd = -1
        self.fd = fd if fd >= 0 and os.isatty(fd) else -1
        #: Keys are read (stdin is a terminal): ``q`` can quit.
        self.active = self.fd >= 0
        self._saved = None
        self._wake = (-1, -1)
        self._old: tuple = ()

    def __enter__(self) -> "Keys":
        if self.active:
            import termios
            import tty

            self._saved = termios.tcgetattr(self.fd)
            tty.setcbreak(self.fd, termios.TCSANOW)
        r, w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._wake = (r, w)
        self._old = (signal.signal(signal.SIGWINCH, lambda *_: None), signal.set_wakeup_fd(w))
        return self

    def wait(self, timeout: float) -> str:
        """Until a key, a resize or ``timeout`` seconds: ``"quit"`` for q, else ``"redraw"``."""
        watched = [self._wake[0]] + ([self.fd] if self.active else [])
        ready, _, _ = select.select(watched, [], [], timeout)
        if self._wake[0] in ready:
            try:
                os.read(self._wake[0], 512)
            except BlockingIOError:
                pass
        if self.active and self.fd in ready:
            data = os.read(self.fd, 64)
            if not data or b"q" in data or b"Q" in data:
                return "quit"
        return "redraw"

    def __exit__(self, *exc) -> None:
        if self._old:
            signal.signal(signal.SIGWINCH, self._old[0])
            signal.set_wakeup_fd(self._old[1])
            self._old = ()
        for fd in self._wake:
            if fd >= 0:
                os.close(fd)
        self._wake = (-1, -1)
        if self._saved is not None:
            import termios

            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
            self._saved = None
