"""The chaos suite's short version (``chaos/run.py --short``), one test per scenario:
crash under load, concurrent clients, malformed requests, store faults, resource
exhaustion and system-mode attacks, each against real daemons. ``make chaos`` runs the
full version and prints the figures docs/reliability.md records.

A scenario that needs root is skipped without it, and fails under ``CI=true``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

RUNNER = Path(__file__).resolve().parents[2] / "chaos" / "run.py"
SCENARIOS = ("malformed", "clients", "crash", "store", "exhaustion", "attacks")


@pytest.mark.parametrize("name", SCENARIOS)
def test_short_chaos(name, tmp_path):
    out = tmp_path / "figures.json"
    res = subprocess.run([sys.executable, str(RUNNER), "--short", "--only", name, "--json", str(out)],
                         capture_output=True, text=True, timeout=900)
    assert out.exists(), f"the runner wrote no figures (exit {res.returncode}):\n{res.stdout}\n{res.stderr}"
    (result,) = json.loads(out.read_text())
    if result["skipped"] and os.environ.get("CI", "").lower() != "true":
        pytest.skip(result["skipped"])
    assert res.returncode == 0 and result["ok"], f"{res.stdout}\n{res.stderr}"
