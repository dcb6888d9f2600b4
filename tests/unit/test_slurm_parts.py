"""The Slurm engine's pure parts: sinfo's node table, the sbatch arguments and batch
script corral writes, squeue's jobs and their exits (no Slurm needed)."""

from __future__ import annotations

import os
import subprocess

import pytest

from corral.capacity.node import GpuDevice, Node
from corral.executors.slurm.batch import (decode_exit, ended_name, job_name, master_port, observe, parse_name,
                                          sbatch_args, sbatch_env, script)
from corral.executors.slurm.inventory import UNKNOWN_MODEL, gpu_models, node_state, read_nodes
from corral.job import Allocation, Job, Piece
from corral.resources import CPU, GPU, MEMORY, Resources
from corral.spec import build_spec

MiB = 2**20


def entry(name, state="idle", flags=(), gres="gpu:a100:2", partitions=("gpu",), cpus=4, mem=4000):
    return {"name": name, "state": state, "state_flags": list(flags), "gres": gres, "partitions": list(partitions),
            "cpus": cpus, "real_memory": mem, "address": "10.0.0.1", "reason": ""}


def test_gres_strings_become_gpus_with_their_types():
    assert gpu_models("gpu:a100:2") == ["a100", "a100"]
    assert gpu_models("gpu:2(S:0-1)") == [UNKNOWN_MODEL] * 2
    assert gpu_models("gpu:v100:1,gpu:a100:1(S:0),shard:8") == ["v100", "a100"]
    assert gpu_models("(null)") == [] and gpu_models("") == []


@pytest.mark.parametrize("state,flags,expected", [
    ("idle", (), "Ready"), ("mixed", (), "Ready"), ("allocated", (), "Ready"),
    ("idle", ("NOT_RESPONDING",), "Lost"), ("down", (), "Lost"), ("mixed", ("DRAIN",), "NotReady"),
    ("idle", ("DRAIN",), "NotReady"), ("unknown", (), "NotReady"), ("idle", ("MAINTENANCE",), "NotReady"),
])
def test_node_states(state, flags, expected):
    assert node_state(entry("n", state, flags)) == expected


def test_nodes_of_the_partition_only():
    data = {"nodes": [entry("b"), entry("a", gres="gpu:1"), entry("c", partitions=("cpu",))]}
    nodes = read_nodes(data, "gpu")
    assert [n.name for n in nodes] == ["a", "b"]
    a = nodes[0].node
    assert a.capacity.get(CPU) == 4000 and a.capacity.get(MEMORY) == 4000 * MiB and a.capacity.get(GPU) == 1
    assert [d.model for d in nodes[1].node.gpus] == ["a100", "a100"] and a.address == "10.0.0.1"


def test_job_names_round_trip_and_other_homes_names_are_not_ours():
    name = job_name("corral-abc", 12, 3)
    assert parse_name("corral-abc", name) == (12, 3)
    assert parse_name("corral-abd", name) is None and parse_name("corral-abc", "corral-abc-x-1") is None
    assert 29500 <= master_port(12, 3) < 39500


def test_decode_exit_from_the_raw_wait_status():
    assert decode_exit(768) == (3, None) and decode_exit(0) == (0, None)
    assert decode_exit(9) == (None, 9) and decode_exit(None) == (None, None)
    seen = observe({"job_id": 7, "name": "x", "job_state": "FAILED", "exit_code": 768, "state_reason": "Non"})
    assert seen.terminal and (seen.exit_code, seen.signal) == (3, None)
    assert observe({"job_id": 7, "job_state": "PENDING", "state_reason": "Resources"}).pending


def node(name, model="a100", gpus=2):
    return Node(name=name, capacity=Resources({CPU: 4000, MEMORY: 4000 * MiB, GPU: gpus}), address="10.0.0.9",
                gpus=tuple(GpuDevice(i, f"{name}-{i}", model, 0) for i in range(gpus)))


def make_job(gpus=1, nodes=1, time_limit=None, command=("sh", "-c", "echo $CORRAL_NODE")):
    requests = {"cpu": "1500m", "memory": "300Mi", **({"nvidia.com/gpu": gpus} if gpus else {})}
    spec = build_spec(list(command), requests=requests, time_limit=time_limit, nodes=nodes)
    req = Resources({CPU: 1500, MEMORY: 300 * MiB, GPU: gpus})
    pieces = tuple(Piece(f"n{i}", req, gpus=tuple(range(gpus))) for i in range(nodes))
    return Job(id=5, spec=spec, seq=5), Allocation(pieces=pieces)


def test_sbatch_pins_the_job_to_corrals_nodes_with_its_resources():
    job, alloc = make_job(gpus=2, nodes=2, time_limit=120)
    args = sbatch_args(job, alloc, {"n0": node("n0"), "n1": node("n1")}, name="corral-x-5-1", partition="gpu",
                       stdout="/o", stderr="/e", comment="c", kill_grace=10)
    for want in ("--nodelist=n0,n1", "--nodes=2", "--ntasks-per-node=1", "--cpus-per-task=2", "--mem=300M",
                 "--gres=gpu:a100:2", "--no-requeue", "--partition=gpu", "--job-name=corral-x-5-1", "--time=4"):
        assert want in args, (want, args)
    job, alloc = make_job(gpus=0)
    args = sbatch_args(job, alloc, {"n0": node("n0", UNKNOWN_MODEL)}, name="n", partition="p", stdout="/o",
                       stderr="/e", comment="c", kill_grace=10)
    assert not any(a.startswith("--gres") for a in args) and not any(a.startswith("--time") for a in args)


def run_script(text: str, extra_env: dict[str, str]) -> str:
    env = {"PATH": os.environ["PATH"], **extra_env}
    return subprocess.run(["bash", "-c", text], env=env, capture_output=True, text=True, timeout=30).stdout


def test_sbatch_gets_the_jobs_environment_with_an_empty_cuda_visible_devices_without_gpus():
    job, alloc = make_job(gpus=0, command=("sh", "-c", 'echo "[$CUDA_VISIBLE_DEVICES] $CORRAL_NODE $A"'))
    env = sbatch_env(alloc, {"CUDA_VISIBLE_DEVICES": "", "A": "it's $quoted", "SLURM_JOB_ID": "9",
                             "SBATCH_PARTITION": "x", "PATH": os.environ["PATH"]})
    assert "SLURM_JOB_ID" not in env and "SBATCH_PARTITION" not in env   # the daemon's own Slurm variables
    text = script(job, alloc, {"n0": node("n0")}, 1)
    assert run_script(text, {**env, "SLURMD_NODENAME": "n0"}).strip() == "[] n0 it's $quoted"
    job, alloc = make_job(gpus=1, command=("sh", "-c", 'echo "[$CUDA_VISIBLE_DEVICES] $CORRAL_GPUS"'))
    env = sbatch_env(alloc, {"CUDA_VISIBLE_DEVICES": "0", "CORRAL_GPUS": "0"}, conf="/etc/slurm.conf")
    assert "CUDA_VISIBLE_DEVICES" not in env and env["SLURM_CONF"] == "/etc/slurm.conf"   # Slurm's choice wins
    text = script(job, alloc, {"n0": node("n0")}, 1)
    assert run_script(text, {"SLURMD_NODENAME": "n0", "CUDA_VISIBLE_DEVICES": "1"}).strip() == "[1] 1"


def test_a_gang_script_starts_replicas_with_srun_and_rank_zeros_address():
    job, alloc = make_job(gpus=1, nodes=2)
    text = script(job, alloc, {"n0": node("n0"), "n1": node("n1")}, 2)
    assert "exec srun --nodes=2 --ntasks-per-node=1 --kill-on-bad-exit=1" in text
    assert "MASTER_ADDR=10.0.0.9" in text and f"MASTER_PORT={master_port(5, 2)}" in text
    assert 'RANK="$SLURM_PROCID"' in text and 'CORRAL_NODE_RANK="$SLURM_NODEID"' in text


def test_sstat_usage_is_summed_over_a_jobs_steps():
    from corral.executors.slurm.usage import cpu_seconds, memory_bytes, parse_sstat

    assert cpu_seconds("00:01:02") == 62 and cpu_seconds("1-02:00:00") == 93600 and cpu_seconds("01:02.5") == 62.5
    assert memory_bytes("120M") == 120 * MiB and memory_bytes("512K") == 512 * 1024 and memory_bytes("x") is None
    out = ("12.batch|cpu=00:00:02,energy=0,mem=10M,pages=0|1\n12.0|cpu=00:00:03,mem=20M|2\n"
           "13.extern|cpu=00:00:00,mem=0|1\ngarbage\n")
    got = parse_sstat(out)
    assert got[12] == {"cpu_seconds": 5.0, "memory": 30 * MiB, "processes": 3}
    assert got[13]["cpu_seconds"] == 0.0


def ended_script(tmp_path, command):
    job, alloc = make_job(gpus=0, command=command)
    ended = tmp_path / ended_name(job.id, 1)
    return script(job, alloc, {"n0": node("n0")}, 1, ended=str(ended), wake=str(tmp_path / f"wake-{ended.name}")), ended


def test_the_batch_script_records_the_exit_code_and_waits_for_the_hand_off(tmp_path):
    import time

    text, ended = ended_script(tmp_path, ("sh", "-c", "exit 3"))
    proc = subprocess.Popen(["bash", "-c", text], env={"PATH": os.environ["PATH"], "SLURMD_NODENAME": "n0"})
    try:
        while not ended.exists() and proc.poll() is None:
            time.sleep(0.002)
        assert ended.read_text() == "3\n"
        assert proc.poll() is None                    # holds its resources until corral says so
        (tmp_path / f"{ended.name}.go").touch()
        assert proc.wait(timeout=30) == 3
    finally:
        proc.kill()
        proc.wait()
    assert sorted(p.name for p in tmp_path.iterdir()) == [ended.name, f"{ended.name}.go"]   # corral removes .go


def test_the_hand_off_wakes_the_script_through_its_fifo_and_the_command_does_not_inherit_it(tmp_path):
    import time

    text, ended = ended_script(tmp_path, ("sh", "-c", "ls /proc/$$/fd > fds; exit 4"))
    fifo = tmp_path / f"wake-{ended.name}"
    os.mkfifo(fifo)
    assert text.startswith("#!/bin/bash\n")
    proc = subprocess.Popen(["bash", "-c", text], env={"PATH": os.environ["PATH"]}, cwd=tmp_path)
    try:
        while not ended.exists() and proc.poll() is None:
            time.sleep(0.002)
        assert ended.read_text() == "4\n" and proc.poll() is None
        time.sleep(0.1)
        assert proc.poll() is None                    # a pause on the FIFO is a wait, not an end
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)   # the script holds it open: no ENXIO
        os.write(fd, b"go\n")
        os.close(fd)
        assert proc.wait(timeout=30) == 4
    finally:
        proc.kill()
        proc.wait()
    assert not (tmp_path / f"{ended.name}.go").exists()     # woken by the FIFO alone
    assert "3" not in (tmp_path / "fds").read_text().split()


def test_the_batch_script_stops_waiting_by_itself_and_a_signal_ends_it_by_that_signal(tmp_path):
    text, ended = ended_script(tmp_path, ("sh", "-c", "exit 0"))
    done = subprocess.run(["bash", "-c", text], env={"PATH": os.environ["PATH"]}, timeout=30)
    assert done.returncode == 0 and ended.read_text() == "0\n"      # no .go came: it ended anyway
    text, ended = ended_script(tmp_path, ("sh", "-c", "kill -TERM $$"))
    done = subprocess.run(["bash", "-c", text], env={"PATH": os.environ["PATH"]}, timeout=30)
    assert done.returncode == -15 and ended.read_text() == "143\n"


def test_a_stop_signal_reaches_the_command_and_the_script_records_how_it_ended(tmp_path):
    import signal
    import time

    ready = tmp_path / "ready"
    text, ended = ended_script(tmp_path, ("sh", "-c", f"trap 'exit 7' USR1; touch {ready}; while :; do sleep 0.01; done"))
    proc = subprocess.Popen(["bash", "-c", text], env={"PATH": os.environ["PATH"]}, start_new_session=True)
    try:
        while not ready.exists():                     # the command has set its trap
            time.sleep(0.005)
        os.killpg(proc.pid, signal.SIGUSR1)           # as scancel --full --signal=USR1 does
        assert proc.wait(timeout=30) == 7
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert ended.read_text() == "7\n"


def test_squeue_columns_read_as_its_json_entries():
    from datetime import datetime

    from corral.executors.slurm.client import parse_squeue

    text = ("1|FAILED|NonZeroExitCode|n0|2026-12-03T12:05:56|2026-12-03T12:05:57|768|/tmp/o|corral-ab12cd-7-2\n"
            "5|PENDING|BeginTime||2026-12-03T13:05:54|NONE|0|/dev/null|a|name with | bars \n"
            "3|RUNNING|None|n[0-1]|2026-12-03T12:05:56|NONE|0|/tmp/o-%j|x\n"
            " \n"
            "garbage line\n")
    jobs = parse_squeue(text)
    assert [j["job_id"] for j in jobs] == [1, 5, 3]
    failed, pending, running = (observe(j) for j in jobs)
    assert failed.terminal and (failed.exit_code, failed.signal) == (3, None) and failed.name == "corral-ab12cd-7-2"
    assert failed.end_time == datetime.fromisoformat("2026-12-03T12:05:57").timestamp() and failed.nodes == "n0"
    assert pending.pending and pending.reason == "BeginTime" and pending.name == "a|name with | bars"
    assert pending.end_time == 0 and pending.nodes == ""
    assert not running.pending and not running.terminal and running.nodes == "n[0-1]"
