"""``corral top``'s pure parts: the header's refresh interval, lines cut to the terminal."""

from __future__ import annotations

import os

from corral.cli import topkeys
from corral.cli.usage_cmds import cut, frame

DATA = {
    "now": 1_700_000_000.0, "pending": 3, "sample_interval": 5,
    "enforcement": {"description": "cgroup v2 (memory, cpu, pids)"},
    "jobs": [{"id": 12, "name": "a-rather-long-name-for-a-training-run", "user": "alice",
              "started_at": 1_699_999_000.0, "limits": {"memory": "16Gi", "cpu": "4"}, "gpus": [0, 1],
              "live": {"cpu": 3.5, "memory": 2**33, "memory_peak": 2**34, "gpu_util": 97.0,
                       "gpu_memory": 2**34, "gpu_power": 250.0}}],
    "gpus": [{"index": 0, "model": "NVIDIA A100-SXM4-80GB", "memory": 80 * 2**30, "job": 12,
              "sample": {"utilization": 97.0, "memory_used": 2**34, "power": 250.0}}],
}


def test_header_says_the_refresh_interval_in_use():
    head = frame(DATA, interval=2.0).splitlines()[0]
    assert head.startswith("corral top - every 2s - ")
    assert "1 running, 3 pending" in head and "sampled every 5s" in head
    assert "every 0.5s" in frame(DATA, interval=0.5).splitlines()[0]
    assert "every" not in frame(DATA).splitlines()[0].replace("sampled every", "")     # one frame: no refresh


def test_lines_are_cut_to_the_width():
    full = frame(DATA, interval=2.0)
    assert max(map(len, full.splitlines())) > 40
    for width in (20, 40, 79):
        text = frame(DATA, interval=2.0, width=width)
        assert all(len(line) <= width for line in text.splitlines())
        assert [line[:width] for line in full.splitlines()] == text.splitlines()
    assert frame(DATA, interval=2.0, width=None) == full
    assert cut("abc\ndefgh", 3) == "abc\ndef"
    assert cut("abc", 0) == "abc"


def test_keys_q_quits_other_keys_redraw():
    master, slave = os.openpty()
    try:
        stream = open(slave, closefd=False)
        with topkeys.Keys(stream) as keys:
            assert keys.active
            os.write(master, b"x")
            assert keys.wait(30) == "redraw"
            os.write(master, b"q")
            assert keys.wait(30) == "quit"
        import termios

        attrs = termios.tcgetattr(slave)
        assert attrs[3] & termios.ICANON and attrs[3] & termios.ECHO         # restored
    finally:
        os.close(master)
        os.close(slave)


def test_keys_without_a_terminal_only_wait(tmp_path):
    with open(tmp_path / "f", "w+") as f, topkeys.Keys(f) as keys:
        assert not keys.active
        assert keys.wait(0) == "redraw"
