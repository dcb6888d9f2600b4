"""Facts about the machine a benchmark ran on, shared by the benchmark scripts."""

from __future__ import annotations

import platform


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def find_corral() -> str | None:
    """The `corral` command next to this interpreter, else on PATH (None, with a message, when missing)."""
    import shutil
    import sys
    from pathlib import Path

    venv_bin = Path(sys.executable).parent
    found = str(venv_bin / "corral") if (venv_bin / "corral").exists() else shutil.which("corral")
    if not found:
        print("error: no `corral` command next to this interpreter or on PATH; run `make venv` first",
              file=sys.stderr)
    return found
