"""What corral gives ``sbatch`` for one placed job, and what it reads back from ``squeue``.

Pure: no Slurm is called here.

* :func:`sbatch_args`: the job pinned to the nodes corral chose (``-w``, ``-N``, one
  task per node), each node's CPUs, memory and GPUs (``--gres=gpu[:TYPE]:N``, the type
  from the GPU model), a time limit a minute past corral's own (corral stops the job at
  its limit with its stop signal; Slurm's limit only backs that up), ``--no-requeue``
  (corral requeues, never Slurm), the logs appended, the job named after the corral home,
  job and attempt so a restarted daemon finds it.
* :func:`sbatch_env` and :func:`script`: sbatch runs with corral's environment for the
  job (Slurm passes it on), and a POSIX shell batch script adds the node's part and runs
  its command -- through ``srun``, one replica per node with the rank variables,
  for a job over several nodes. GPUs: Slurm chooses the devices on each node and sets
  ``CUDA_VISIBLE_DEVICES``; corral keeps that (and copies it to ``CORRAL_GPUS``), and sets
  it *empty* for a job without GPUs (Slurm leaves it unset: the job would see every GPU).
* :func:`observe`: a ``squeue`` job (its ``--json`` keys) as a :class:`Seen` (state,
  Slurm's reason, nodes, the exit decoded from the raw wait status: 768 is exit 3).
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

from ...resources import CPU, GPU, MEMORY
from .inventory import UNKNOWN_MODEL

if TYPE_CHECKING:
    from ...capacity.node import Node
    from ...job import Allocation, Job

#: Set by corral per job; Slurm's values win where it chooses (the GPUs).
GPU_VARS = ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "CORRAL_GPUS")
#: Variables of the daemon's own environment that must not reach a job through sbatch.
_DROP = ("SLURM_", "SBATCH_", "SRUN_", "SALLOC_")
#: Slurm states after which nothing of the job runs any more.
TERMINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED",
                      "BOOT_FAIL", "DEADLINE", "SPECIAL_EXIT", "REVOKED"})
MiB = 2**20


def job_name(namespace: str, job_id: int, attempt: int) -> str:
    """The Slurm job name of one launch (how a restarted daemon finds it)."""
    return f"{namespace}-{job_id}-{attempt}"


def parse_name(namespace: str, name: str) -> tuple[int, int] | None:
    """(job id, attempt) of a Slurm job name this home gave, else None."""
    prefix = namespace + "-"
    if not name.startswith(prefix):
        return None
    parts = name[len(prefix):].split("-")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        return None
    return int(parts[0]), int(parts[1])


def master_port(job_id: int, attempt: int) -> int:
    """The rendezvous port of a job over several nodes: fixed by its id and attempt, so
    every replica knows it before any starts (29500-39499)."""
    return 29500 + (job_id * 31 + attempt) % 10000


def gres(allocation: "Allocation", node: "Node") -> str:
    """``gpu:TYPE:N`` (or ``gpu:N``) for one piece's GPUs on ``node``."""
    piece = allocation.pieces[0]
    count = piece.requests.get(GPU, 0)
    if not count:
        return ""
    models = {d.model for d in node.gpus if d.index in piece.gpus} or {d.model for d in node.gpus}
    kind = next(iter(models)) if len(models) == 1 else ""
    return f"gpu:{kind}:{count}" if kind and kind != UNKNOWN_MODEL else f"gpu:{count}"


def sbatch_args(job: "Job", allocation: "Allocation", nodes: Mapping[str, "Node"], *, name: str, partition: str,
                stdout: str, stderr: str, comment: str, kill_grace: float) -> list[str]:
    piece = allocation.pieces[0]
    req = piece.requests
    cpus = max(1, math.ceil(req.get(CPU, 0) / 1000))
    mem = max(1, math.ceil(req.get(MEMORY, 0) / MiB))
    args = ["--parsable", f"--job-name={name}", f"--comment={comment}", f"--partition={partition}",
            f"--nodelist={','.join(allocation.nodes)}", f"--nodes={len(allocation.pieces)}",
            "--ntasks-per-node=1", f"--cpus-per-task={cpus}", f"--mem={mem}M", "--no-requeue",
            "--open-mode=append", f"--output={stdout}", f"--error={stderr}", "--export=ALL",
            f"--chdir={job.spec.workdir or '/'}"]
    kind = gres(allocation, nodes[piece.node])
    if kind:
        args.append(f"--gres={kind}")
    if job.spec.time_limit:
        grace = job.spec.kill_grace if job.spec.kill_grace is not None else kill_grace
        args.append(f"--time={math.ceil((job.spec.time_limit + grace) / 60) + 1}")
    return args


def sbatch_env(allocation: "Allocation", env: Mapping[str, str], conf: str = "") -> dict[str, str]:
    """The environment ``sbatch`` runs with, which Slurm gives the job (``--export=ALL``,
    Slurm's default: ``NIL``/``NONE`` double a short job's time in Slurm here): corral's
    environment for the job, without the variables that steer sbatch itself, and --
    with GPUs -- without the GPU variables, which Slurm sets to the devices it chose."""
    has_gpus = bool(allocation.pieces[0].requests.get(GPU, 0))
    out = {k: v for k, v in env.items()
           if not k.startswith(_DROP) and not (has_gpus and k in GPU_VARS) and k != "CORRAL_NODE" and "\0" not in v}
    if conf:
        out["SLURM_CONF"] = conf
    return out


def ended_name(job_id: int, attempt: int) -> str:
    """The file in the ``ended`` folder where a launch's batch script writes its exit code."""
    return f"{job_id}.{attempt}"


#: Signals whose conventional shell exit code (128 + n) the batch script raises again
#: on itself, so Slurm records a command killed by a signal as killed by that signal.
_RERAISE = (1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
#: What the batch script's own shell ignores while its command runs (a stop signal sent
#: with ``scancel --full`` reaches the command; the shell lives on to record the exit).
_TRAPPED = "HUP INT QUIT USR1 USR2 ALRM TERM"


def _run_and_record(command: str, ended: str, wake: str) -> list[str]:
    """Run ``command`` as a child, write its exit code to ``ended`` (one short write: a
    reader sees nothing or the code and its newline), wait a moment for corral's
    hand-off, and end as the command ended. The hand-off wakes the script at once through
    the FIFO ``wake`` where corral made one (a FIFO is a pipe of the host
    that opens it: for a script on another host than the daemon it is only a fork-free
    pause), else it looks for ``ended`` + ``.go`` (which corral removes) every 25 ms.
    Nothing but the fallback's waits forks: each fork is CPU the jobs beside it lack."""
    reraise = "|".join(str(128 + n) for n in _RERAISE)
    go, fifo = shlex.quote(ended + ".go"), shlex.quote(wake or ended + ".fifo")
    return [f"trap : {_TRAPPED}",
            command,
            "code=$?",
            f"trap - {_TRAPPED}",
            # Open before the exit code is written: corral writes to it only after.
            f"if [ -p {fifo} ] && exec 3<>{fifo}; then pause() {{ read -r -t 0.025 -u 3 _; }}; "
            "else pause() { sleep 0.025 2>/dev/null; return 1; }; fi",
            f"printf '%s\\n' \"$code\" > {shlex.quote(ended)} 2>/dev/null",
            # The hand-off: hold the resources until corral has submitted what it placed
            # on them, at most a second, so Slurm starts that on this end.
            f'if [ "$code" -le 128 ]; then i=0; while [ ! -e {go} ] && [ $i -lt 40 ]; do '
            f"pause && break; i=$((i + 1)); done; fi",
            f'case "$code" in {reraise}) ulimit -c 0; kill -s "$(kill -l "$code")" $$;; esac',
            'exit "$code"']


def script(job: "Job", allocation: "Allocation", nodes: Mapping[str, "Node"], attempt: int,
           ended: str = "", wake: str = "") -> str:
    """The batch script: the node's and Slurm's part of corral's environment, then the
    command (one replica per node through ``srun`` over several nodes). With ``ended``
    (a path), the command runs as the script's child and its exit code is written there
    the moment it ends -- before Slurm has finished the job -- so corral learns of the end
    without waiting for its next ``squeue``; a command killed by a signal still ends the
    script by that signal."""
    has_gpus = bool(allocation.pieces[0].requests.get(GPU, 0))
    lines = ["#!/bin/bash", "# corral job %d, attempt %d" % (job.id, attempt),
             'export CORRAL_NODE="$SLURMD_NODENAME"', 'export CORRAL_SLURM_JOB_ID="$SLURM_JOB_ID"']
    # Without GPUs the GPU variables are set empty here: Slurm does not pass empty ones on.
    gpu_line = ('export CORRAL_GPUS="${CUDA_VISIBLE_DEVICES-}"' if has_gpus else
                "export CUDA_VISIBLE_DEVICES= NVIDIA_VISIBLE_DEVICES= CORRAL_GPUS=")
    argv = " ".join(shlex.quote(a) for a in job.spec.command)
    if len(allocation.pieces) == 1:
        if gpu_line:
            lines.append(gpu_line)
        lines += _run_and_record(argv, ended, wake) if ended else [f"exec {argv}"]
        return "\n".join(lines) + "\n"
    # Several nodes: the batch script runs on the first node of the allocation, which is
    # the first rank's (SLURM_NODEID 0): its address is the rendezvous.
    cases = " ".join(f"{shlex.quote(n)}) MASTER_ADDR={shlex.quote(nodes[n].address or '127.0.0.1')};;"
                     for n in allocation.nodes)
    lines += [f'case "$SLURMD_NODENAME" in {cases} *) MASTER_ADDR=$(hostname);; esac',
              "export MASTER_ADDR", f"export MASTER_PORT={master_port(job.id, attempt)}"]
    rank = ('export CORRAL_NODE_RANK="$SLURM_NODEID" RANK="$SLURM_PROCID" WORLD_SIZE="$SLURM_NTASKS" '
            'LOCAL_RANK=0 CORRAL_NUM_NODES="$SLURM_NNODES" CORRAL_NODE="$SLURMD_NODENAME"; ')
    if gpu_line:
        rank += gpu_line + "; "
    replica = shlex.quote(rank + 'exec "$@"')
    srun = (f"srun --nodes={len(allocation.pieces)} --ntasks-per-node=1 "
            f"--kill-on-bad-exit=1 /bin/sh -c {replica} corral-replica {argv}")
    lines += _run_and_record(srun, ended, wake) if ended else [f"exec {srun}"]
    return "\n".join(lines) + "\n"


def decode_exit(raw: Any) -> tuple[int | None, int | None]:
    """(exit code, signal) from Slurm's raw wait status (squeue's ``exit_code``)."""
    if raw is None:
        return None, None
    raw = int(raw)
    if raw & 0x7F:
        return None, raw & 0x7F
    return (raw >> 8) & 0xFF, None


@dataclass(frozen=True)
class Seen:
    """One Slurm job as ``squeue`` shows it."""

    slurm_id: int
    name: str
    state: str
    reason: str
    nodes: str
    exit_code: int | None
    signal: int | None
    start_time: float
    end_time: float
    stdout: str = ""

    @property
    def terminal(self) -> bool:
        """Nothing of the job runs any more. Not COMPLETING: the exit code of a job that
        Slurm killed is recorded only after it."""
        return self.state in TERMINAL

    @property
    def pending(self) -> bool:
        return self.state in ("PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD")


def observe(entry: dict[str, Any]) -> Seen:
    state = str(entry.get("job_state") or "")
    if isinstance(entry.get("job_state"), list):          # newer Slurm: a list of words
        state = str((entry["job_state"] or [""])[0])
    code, sig = decode_exit(entry.get("exit_code"))
    return Seen(slurm_id=int(entry.get("job_id") or 0), name=str(entry.get("name") or ""), state=state.upper(),
                reason=str(entry.get("state_reason") or ""), nodes=str(entry.get("nodes") or ""),
                exit_code=code, signal=sig, start_time=float(entry.get("start_time") or 0),
                end_time=float(entry.get("end_time") or 0), stdout=str(entry.get("standard_output") or ""))
