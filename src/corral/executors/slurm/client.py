"""The Slurm commands corral runs: ``sbatch``, ``scancel``, ``squeue``, ``sinfo --json``
and ``sacct -c`` (the job-completion file, where there is no accounting database).

``squeue`` is read in its ``--Format`` columns, not ``--json``: Slurm 22.05's JSON output
ignores ``--states`` and lists every job slurmctld still remembers (finished ones for
``MinJobAge``), 3-4 KB each, so at a poll every quarter second its size grew with the
backlog; the columns honour the filters and cost a third of the CPU.

Every call has a timeout and a clear error: a Slurm that does not answer, or answers with
an error, raises :class:`SlurmError` with Slurm's own first line -- never a traceback.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from datetime import datetime
from typing import Any

#: How long one Slurm command may take before corral gives up on it.
TIMEOUT = 30.0
#: squeue's columns, ``|``-separated, the job's name last (a name may hold a ``|``), and
#: the keys of ``squeue --json`` they stand for (what :func:`.batch.observe` reads).
SQUEUE_FORMAT = ("JobID:|,State:|,Reason:|,NodeList:|,StartTime:|,EndTime:|,exit_code:|,STDOUT:|,Name:")
_SQUEUE_KEYS = ("job_id", "job_state", "state_reason", "nodes", "start_time", "end_time", "exit_code",
                "standard_output", "name")


def _when(text: str) -> float:
    """squeue's local ISO time as seconds since the epoch; 0 for ``NONE``/``Unknown``/``N/A``."""
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return 0.0


def parse_squeue(text: str) -> list[dict[str, Any]]:
    """``squeue -h -O SQUEUE_FORMAT`` output as ``squeue --json``-style job entries."""
    jobs = []
    for line in text.splitlines():
        cols = line.rstrip("\n").split("|", len(_SQUEUE_KEYS) - 1)
        if len(cols) != len(_SQUEUE_KEYS) or not cols[0].strip().isdigit():
            continue
        entry: dict[str, Any] = dict(zip(_SQUEUE_KEYS, (c.strip() for c in cols)))
        entry["name"] = cols[-1].rstrip()
        entry["job_id"] = int(entry["job_id"])
        entry["start_time"], entry["end_time"] = _when(entry["start_time"]), _when(entry["end_time"])
        entry["exit_code"] = int(entry["exit_code"]) if entry["exit_code"].isdigit() else None
        jobs.append(entry)
    return jobs


class SlurmError(RuntimeError):
    """A Slurm command failed; the message is Slurm's first line of complaint."""


class SlurmClient:
    def __init__(self, conf: str = "", partition: str = ""):
        self.env = dict(os.environ)
        if conf:
            self.env["SLURM_CONF"] = conf
        for key in [k for k in self.env if k.startswith(("SLURM_JOB", "SBATCH_", "SLURM_NODELIST"))]:
            del self.env[key]            # a daemon started inside an allocation must not pass it on
        self.partition = partition
        self.uid = os.getuid()

    def _run(self, args: list[str], stdin: str | None = None, timeout: float = TIMEOUT,
             env: dict[str, str] | None = None) -> str:
        if env is not None:
            args = [shutil.which(args[0], path=self.env.get("PATH")) or args[0], *args[1:]]
        try:
            res = subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=timeout,
                                 env=self.env if env is None else env)
        except FileNotFoundError:
            raise SlurmError(f"{args[0]} not found: is the Slurm client installed (apt-get install slurm-client)?") \
                from None
        except subprocess.TimeoutExpired:
            raise SlurmError(f"{args[0]} did not answer within {timeout:g} s") from None
        if res.returncode != 0:
            lines = [ln for ln in (res.stderr or res.stdout).strip().splitlines() if ln.strip()]
            first = lines[0].strip() if lines else f"exit code {res.returncode}"
            raise SlurmError(first.removeprefix(f"{os.path.basename(args[0])}: ").removeprefix("error: "))
        return res.stdout

    def _json(self, args: list[str]) -> dict[str, Any]:
        out = self._run(args)
        try:
            data = json.loads(out)
        except ValueError:
            raise SlurmError(f"{args[0]} printed no JSON (Slurm 21.08 or newer is needed)") from None
        if not isinstance(data, dict):
            raise SlurmError(f"{args[0]} printed unexpected JSON")
        return data

    def sinfo(self) -> dict[str, Any]:
        return self._json(["sinfo", "--json"])

    def squeue(self, job_ids: list[int] | None = None) -> list[dict[str, Any]]:
        """This user's live jobs in the partition (pending, running, completing ...); with
        ``job_ids``, those jobs in any state, finished ones still in slurmctld's memory too.
        (All finished jobs at every poll would grow with MinJobAge's backlog.)"""
        if job_ids is not None and not job_ids:
            return []
        args = ["squeue", "-h", "-O", SQUEUE_FORMAT, f"--user={self.uid}"]
        if job_ids:
            args += ["--states=all", "--jobs=" + ",".join(map(str, job_ids))]
        if self.partition:
            args.append(f"--partition={self.partition}")
        try:
            return parse_squeue(self._run(args))
        except SlurmError as exc:
            if job_ids and "Invalid job id" in str(exc):
                return []                 # all of them forgotten by slurmctld already
            raise

    def squeue_named(self, name: str) -> list[dict[str, Any]]:
        """This user's jobs named ``name`` in any state slurmctld still remembers."""
        return parse_squeue(self._run(["squeue", "-h", "-O", SQUEUE_FORMAT, "--states=all", f"--user={self.uid}",
                                       f"--name={name}"]))

    def sbatch(self, args: list[str], script: str, env: dict[str, str]) -> int:
        """Submit ``script``; ``env`` is the job's environment (sbatch passes its own on)."""
        out = self._run(["sbatch", *args], stdin=script, env={**env, "SLURM_CONF": self.env.get("SLURM_CONF", "")}
                        if self.env.get("SLURM_CONF") else env).strip()
        try:
            return int(out.split(";")[0])
        except ValueError:
            raise SlurmError(f"sbatch printed no job id: {out[:200]!r}") from None

    def scancel(self, slurm_id: int, signal: str | None = None) -> None:
        args = ["scancel", "--full"] if signal else ["scancel"]
        if signal:
            args.append(f"--signal={signal}")
        self._run([*args, str(slurm_id)])

    def sstat(self, slurm_ids: list[int]) -> str:
        """Every step's usage of these running jobs (``sstat``), as Slurm prints it."""
        return self._run(["sstat", "-n", "-P", "-a", "-j", ",".join(map(str, slurm_ids)), "-o",
                          "JobID,TresUsageInTot,NTasks"], timeout=10)

    def completed(self, name: str) -> list[dict[str, str]]:
        """Finished jobs named ``name`` in the job-completion file (``sacct -c``): their
        id, state and ``exit:signal``; [] where there is no such file."""
        try:
            out = self._run(["sacct", "-c", "-n", "-P", f"--name={name}", "-o", "jobid,jobname%100,state,exitcode,nodelist",
                             "-S", "now-7days"])
        except SlurmError:
            return []
        rows = []
        for line in out.splitlines():
            parts = line.split("|")
            # The name filter is not applied to the completion file in every Slurm version.
            if len(parts) >= 4 and parts[0].isdigit() and parts[1] == name:
                rows.append({"jobid": parts[0], "state": (parts[2].split() or ["COMPLETED"])[0].upper(),
                             "exitcode": parts[3], "nodes": parts[4] if len(parts) > 4 else ""})
        return rows
