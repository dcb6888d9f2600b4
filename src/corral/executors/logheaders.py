"""The line that opens each retried or requeued attempt's output in a job's logs.

A job that runs again (a retry after a failure, a requeue after preemption or a lost
node) appends to the same stdout and stderr. Its supervisor first writes, on a line of
its own, ``[corral] attempt 2 started 2026-12-02 13:40:01 +0000 on node1`` to both; the
first attempt's output starts the file as the job wrote it (so a job whose output is
data keeps it intact unless it is retried). ``corral logs --attempt N`` cuts the logs at
these lines (:func:`attempt_range`). Standard library only: the job launcher imports it.
"""

from __future__ import annotations

import time
from typing import Callable

PREFIX = b"[corral] attempt "


def attempt_header(attempt: int, when: float, node: str) -> bytes:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(when))
    return PREFIX + f"{attempt} started {stamp} on {node or 'this node'}\n".encode()


def _marker(attempt: int) -> bytes:
    return PREFIX + f"{attempt} started ".encode()


def find_line(read: Callable[[int], bytes | None], marker: bytes, start: int = 0) -> int | None:
    """The offset of the first line at or after ``start`` that begins with ``marker``,
    reading the log in chunks through ``read(offset)`` (one chunk in memory at a time)."""
    needle = b"\n" + marker
    pos = start
    carry = b"\n" if start == 0 else (read(start - 1) or b"")[:1]    # what precedes ``start``
    while True:
        data = read(pos)
        if not data:
            return None
        window = carry + data
        at = window.find(needle)
        if at >= 0:
            return pos - len(carry) + at + 1
        pos += len(data)
        carry = window[-(len(needle) - 1):]         # a line may straddle two chunks


def attempt_range(read: Callable[[int], bytes | None], attempt: int) -> tuple[int, int | None] | None:
    """Where attempt ``attempt``'s output lies in a log: (start, end), end None for the
    rest of the log; None when the log holds no such attempt."""
    start = 0 if attempt == 1 else find_line(read, _marker(attempt))
    if start is None:
        return None
    end = find_line(read, _marker(attempt + 1), start)
    return start, end
