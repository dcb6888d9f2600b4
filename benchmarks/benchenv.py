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


class EngineCorral:
    """A corral daemon of its own (a fresh home) in front of an engine, driven through
    the SDK and the CLI: ``config`` is its config.yaml, ``env`` what its processes get
    besides this one's environment (without CORRAL_ variables)."""

    requests: dict[str, str] = {"cpu": "100m"}

    def __init__(self, root: str, config: str, env: dict[str, str], prefix: str = "cbe"):
        import os
        import tempfile
        from pathlib import Path

        from corral.client import Client

        self.home = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
        self.work = root
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CORRAL_")}
        self.env.update(CORRAL_HOME=self.home, **env)
        Path(self.home, "config.yaml").write_text(config)
        self.cli("up")
        self.client = Client(self.home)

    def _exe(self) -> str:
        import sys
        from pathlib import Path

        return str(Path(sys.executable).with_name("corral"))

    def cli(self, *args: str) -> str:
        import subprocess

        res = subprocess.run([self._exe(), *args], env=self.env, cwd=self.work, capture_output=True, text=True,
                             timeout=300)
        if res.returncode != 0:
            raise SystemExit(f"corral {' '.join(args)}: {res.stderr.strip()}")
        return res.stdout

    def submit(self, command: list[str], n: int = 1, **requests: str) -> list[int]:
        doc = {"spec": {"command": command, "resources": {"requests": requests or self.requests}}}
        return [j.id for j in self.client.submit([doc] * n, workdir=self.work)]

    def state(self, job_id: int) -> dict:
        return self.client.request("GET", f"/v1/jobs/{job_id}")

    def close(self) -> None:
        import shutil
        import subprocess

        subprocess.run([self._exe(), "down"], env=self.env, capture_output=True, timeout=120)
        shutil.rmtree(self.home, ignore_errors=True)
