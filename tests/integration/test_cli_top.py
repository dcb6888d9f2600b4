"""``corral top`` on a real terminal: the header says the refresh interval, lines are cut
to the terminal's width, ``q`` quits and the terminal is restored."""

from __future__ import annotations

import re
import termios

import pytest

from test_cli_run import Terminal

pytestmark = pytest.mark.integration


def test_top_q_quits_restores_the_terminal_and_cuts_lines(corral4):
    c = corral4
    job = c.submit("--name", "a-rather-long-job-name-to-make-a-wide-row", "--cpus", "100m", "--", "sleep 1000")
    c.wait_state(job, "Running")
    term = Terminal(c, "top", rows=30, cols=40)
    try:
        term.read_until(b"to quit)")
        before = termios.tcgetattr(term.fd)
        assert not before[3] & termios.ICANON and not before[3] & termios.ECHO   # cbreak while it runs
        term.type("q")
        code = term.wait_open()
        after = termios.tcgetattr(term.fd)
    finally:
        term.kill()
    assert code == 0
    assert after[3] & termios.ICANON and after[3] & termios.ECHO             # restored
    screen = re.sub(rb"\x1b\[[0-9;]*[A-Za-z]", b"", term.output).decode()
    lines = [line for line in screen.replace("\r", "").split("\n") if line]
    assert "(q or Ctrl-C to quit)" in lines
    assert any("every 2s" in line for line in lines) or "every 2s" in screen.replace("\n", ""), screen
    assert all(len(line) <= 40 for line in lines), lines
