"""The header line that opens each retried attempt's output, and cutting logs at it."""

from __future__ import annotations

import os

from corral.executors.local import supervisor
from corral.executors.logheaders import attempt_header, attempt_range, find_line


def reader(data: bytes, chunk: int):
    return lambda at: data[at:at + chunk]


def test_attempts_are_cut_at_their_headers_whatever_the_chunk_size():
    log = b"a\nb\n" + attempt_header(2, 0, "n1") + b"x\n" + attempt_header(3, 0, "n1") + b"y"
    second = log.index(b"[corral] attempt 2")
    third = log.index(b"[corral] attempt 3")
    for chunk in (1, 2, 5, 17, 1 << 20):
        read = reader(log, chunk)
        assert attempt_range(read, 1) == (0, second)
        assert attempt_range(read, 2) == (second, third)
        assert attempt_range(read, 3) == (third, None)
        assert attempt_range(read, 4) is None


def test_a_header_counts_only_at_the_start_of_a_line():
    fake = b"say [corral] attempt 2 started then\n"
    assert attempt_range(reader(fake, 8), 2) is None
    assert find_line(reader(b"[corral] attempt 2 started x\n", 4), b"[corral] attempt 2 started ") == 0


def test_the_header_goes_on_a_line_of_its_own(tmp_path):
    path = tmp_path / "log"
    path.write_bytes(b"unfinished")
    fd = os.open(path, os.O_RDWR | os.O_APPEND)
    supervisor._append_header(fd, attempt_header(2, 0, "n1"))
    os.close(fd)
    assert path.read_bytes().startswith(b"unfinished\n[corral] attempt 2 started ")
    assert path.read_bytes().endswith(b" on n1\n")
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    fd = os.open(empty, os.O_RDWR | os.O_APPEND)
    supervisor._append_header(fd, attempt_header(5, 0, ""))
    os.close(fd)
    assert empty.read_bytes().startswith(b"[corral] attempt 5 started ") and b" on this node\n" in empty.read_bytes()
