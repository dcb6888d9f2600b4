"""CLI basics against one shared daemon (2 simulated GPUs): submit/show/ps/logs/wait,
YAML job files and batches, validation errors, the job's environment and CPU pinning.

The tests are independent of each other: each waits for its own jobs (one stops the
daemon and checks that the next command starts it again, with the same settings).
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time

import pytest

from corral_harness import CORRAL, NCPU, gate_cmd, proc_alive, wait_until

SPEC_FIELDS = "array, command, dependencies, env, gpuModels, gracePeriod, hold, idleGpu, nodeSelector, nodes, preemptible, priority, pty, queue, requeue, resources, resumable, retries, stopSignal, timeLimit, workingDir"


@pytest.fixture
def c(shared_corral):
    return shared_corral


def _env_of(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def _count(c) -> int:
    return len(c.ps("-a"))


# submit / show / logs / wait / ps ------------------------------------------------------------

def test_submit_json_and_show_json(c):
    out = c.json("submit", "--gpus", "1", "--cpus", "100m", "--mem", "64Mi", "--name", "hello", "--",
                 "echo", "hi there")
    assert isinstance(out["id"], int)
    assert out["name"] == "hello" and out["state"] in ("Pending", "Running")
    assert out["command"] == ["echo", "hi there"]
    job = out["id"]
    assert c.wait(job).returncode == 0
    view = c.show(job)
    for key in ("id", "name", "state", "reason", "message", "exit_code", "signal", "gpus", "cpus",
                "requests", "limits", "command", "submitted_at", "started_at", "ended_at", "events"):
        assert key in view, key
    assert (view["state"], view["reason"], view["exit_code"]) == ("Succeeded", "Completed", 0)
    assert len(view["gpus"]) == 1 and view["cpus"] == []  # fractional CPU: shared pool, no pinned core
    assert view["requests"] == {"cpu": "0.1", "memory": "64Mi", "nvidia.com/gpu": "1"}
    assert view["limits"] == view["requests"]
    assert c.logs(job) == "hi there\n"

    human = c.ok("show", str(job))
    assert human.startswith(f"Job {job} (hello)\n  State:     Succeeded (Completed): exit code 0\n")


def test_submit_human_output(c):
    out = c.ok("submit", "--cpus", "100m", "--name", "plain", "--", "true")
    assert out.startswith("submitted job ") and " (plain), " in out and out.endswith("\n")
    job = int(out.split()[2])
    assert c.wait(job).returncode == 0


def test_logs_stdout_and_stderr(c):
    job = c.submit("--cpus", "100m", "--", "echo out; echo err >&2; echo more")
    assert c.wait(job).returncode == 0
    assert c.logs(job) == "out\nmore\n"
    assert c.logs(job, "--stderr") == "err\n"
    assert c.json("logs", str(job)) == {"id": job, "stream": "stdout", "text": "out\nmore\n"}


def _readline(proc: subprocess.Popen, timeout: float = 30.0) -> bytes:
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    buf = b""
    deadline = time.monotonic() + timeout
    while not buf.endswith(b"\n"):
        if not sel.select(max(deadline - time.monotonic(), 0)):
            pytest.fail(f"`corral logs -f` printed nothing for {timeout}s (so far {buf!r})")
        chunk = os.read(proc.stdout.fileno(), 1)
        if not chunk:
            break
        buf += chunk
    return buf


def test_logs_follow_streams_until_the_job_ends(c, tmp_path):
    gate = tmp_path / "gate"
    job = c.submit("--cpus", "100m", "--", gate_cmd(gate, before="echo first", after="echo second; exit 0"))
    c.wait_state(job, "Running")
    proc = subprocess.Popen([*CORRAL, "logs", "-f", str(job)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=c.env, cwd=c.workdir)
    try:
        assert _readline(proc) == b"first\n"
        assert c.show(job)["state"] == "Running"
        assert proc.poll() is None  # still following
        gate.touch()
        rest, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert rest == b"second\n"
    assert c.show(job)["state"] == "Succeeded"


def test_logs_follow_on_a_finished_job_returns_at_once(c):
    job = c.submit("--cpus", "100m", "--", "echo done")
    assert c.wait(job).returncode == 0
    assert c.ok("logs", "-f", str(job), timeout=30) == "done\n"


def test_wait_exit_status_and_ps_state_filter(c):
    ok = c.submit("--cpus", "100m", "--", "true")
    bad = c.submit("--cpus", "100m", "--", "exit 2")
    assert c.wait(ok).returncode == 0
    res = c.wait(ok, bad)
    assert res.returncode == 1
    assert res.stdout.splitlines() == [f"job {ok}: Succeeded (Completed: exit code 0)",
                                       f"job {bad}: Failed (Error: exit code 2)"]
    res = c.run("wait", "--json", str(ok), str(bad))
    assert res.returncode == 1
    waited = json.loads(res.stdout)["jobs"]
    assert [(j["id"], j["state"], j["exit_code"]) for j in waited] == [(ok, "Succeeded", 0), (bad, "Failed", 2)]

    succeeded = c.ps("--state", "Succeeded")
    assert {j["state"] for j in succeeded} == {"Succeeded"}
    ids = {j["id"] for j in succeeded}
    assert ok in ids and bad not in ids
    failed = {j["id"] for j in c.ps("--state", "Failed")}
    assert bad in failed and ok not in failed
    both = {j["id"] for j in c.ps("--state", "Succeeded", "--state", "Failed")}
    assert {ok, bad} <= both
    assert not {ok, bad} & {j["id"] for j in c.ps()}  # default: pending and running only
    assert {ok, bad} <= {j["id"] for j in c.ps("-a")}
    assert len(c.ps("-a", "-n", "1")) == 1

    table = c.ok("ps", "--state", "Succeeded").splitlines()
    assert table[0].split() == ["ID", "NAME", "USER", "STATE", "REQUESTS", "GPUS", "CPUS", "TIME", "EXIT", "REASON"]
    assert any(line.split()[0] == str(ok) for line in table[1:])
    assert not any(line.split()[0] == str(bad) for line in table[1:])

    res = c.run("ps", "--state", "Bogus")
    assert res.returncode == 1
    assert res.stderr == ('error: invalid value for state: "Bogus" '
                          "(expected one of: Pending, Running, Succeeded, Failed, Cancelled)\n")


def test_unknown_job(c):
    for args in (["show", "9999"], ["logs", "9999"], ["wait", "9999"]):
        res = c.run(*args)
        assert res.returncode == 1 and res.stderr == "error: no such job: 9999\n", (args, res)


# YAML job files ---------------------------------------------------------------------------

JOB_YAML = """\
apiVersion: corral/v1
kind: Job
metadata:
  name: train-resnet
  labels:
    team: vision
spec:
  command: ["sh", "-c", "echo FOO=$FOO; echo CVD=$CUDA_VISIBLE_DEVICES; echo OMP=$OMP_NUM_THREADS"]
  env:
    - name: FOO
      value: bar
  resources:
    requests:
      cpu: 100m
      memory: 64Mi
      nvidia.com/gpu: 1
    limits:
      cpu: 500m
      memory: 128Mi
      nvidia.com/gpu: 1
"""


def test_submit_kubernetes_style_job_file(c, tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text(JOB_YAML)
    out = c.ok("submit", "-f", str(path))
    assert out.startswith("submitted job ") and "(train-resnet)" in out
    job = int(out.split()[2])
    assert c.wait(job).returncode == 0
    view = c.show(job)
    assert view["name"] == "train-resnet"
    assert view["labels"] == {"team": "vision"}
    assert view["env"] == {"FOO": "bar"}
    assert view["command"][:2] == ["sh", "-c"]
    assert view["requests"] == {"cpu": "0.1", "memory": "64Mi", "nvidia.com/gpu": "1"}
    assert view["limits"] == {"cpu": "0.5", "memory": "128Mi", "nvidia.com/gpu": "1"}
    env = _env_of(c.logs(job))
    assert env["FOO"] == "bar"
    assert env["CVD"] == ",".join(map(str, view["gpus"])) and len(view["gpus"]) == 1
    assert env["OMP"] == "1"


def test_multi_document_yaml_is_one_batch(c, tmp_path):
    path = tmp_path / "jobs.yaml"
    path.write_text("""\
apiVersion: corral/v1
kind: Job
metadata: {name: first}
spec:
  command: echo one
  resources: {requests: {cpu: 100m}}
---
apiVersion: corral/v1
kind: Job
metadata: {name: second}
spec:
  command: [echo, two]
  resources: {requests: {cpu: 100m}}
""")
    out = c.json("submit", "-f", str(path))
    assert len(out["ids"]) == 2 and out["id"] == out["ids"][0]
    first, second = out["ids"]
    assert second > first
    assert [j["name"] for j in out["jobs"]] == ["first", "second"]
    assert c.wait(first, second).returncode == 0
    assert c.logs(first) == "one\n" and c.logs(second) == "two\n"

    # The same file from stdin, human output: one line per job.
    res = c.run("submit", "-f", "-", input=path.read_text())
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert len(lines) == 2 and "(first)" in lines[0] and "(second)" in lines[1]
    assert c.wait(*(int(line.split()[2].rstrip(",")) for line in lines)).returncode == 0


def test_unknown_yaml_field_names_its_path_and_stores_nothing(c, tmp_path):
    before = _count(c)
    path = tmp_path / "job.yaml"
    path.write_text(JOB_YAML.replace("  command:", "  comand:"))
    res = c.run("submit", "-f", str(path))
    assert res.returncode == 1
    assert res.stderr == f"error: {path}: unknown field spec.comand (accepted: {SPEC_FIELDS})\n"
    assert res.stdout == ""

    # In a batch, an error in one document rejects every document.
    batch = tmp_path / "batch.yaml"
    batch.write_text(JOB_YAML + "---\n" + JOB_YAML.replace("  command:", "  comand:"))
    res = c.run("submit", "-f", str(batch))
    assert res.returncode == 1
    assert res.stderr == f"error: {batch} (document 2): unknown field spec.comand (accepted: {SPEC_FIELDS})\n"
    assert _count(c) == before


def test_bad_quantity_is_rejected(c):
    before = _count(c)
    res = c.run("submit", "--mem", "16GG", "--", "true")
    assert res.returncode == 1
    assert res.stderr == 'error: invalid quantity for memory: "16GG" (expected e.g. 512Mi, 16Gi)\n'
    res = c.run("submit", "--cpus", "abc", "--", "true")
    assert res.returncode == 1
    assert res.stderr == 'error: invalid quantity for cpu: "abc" (expected e.g. 2, 500m, 0.5)\n'
    assert _count(c) == before


def test_file_and_command_together_is_an_error(c, tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text(JOB_YAML)
    before = _count(c)
    res = c.run("submit", "-f", str(path), "--", "true")
    assert res.returncode == 1 and res.stderr.startswith("error: ") and "-f" in res.stderr
    assert _count(c) == before


# the job's environment and CPUs -------------------------------------------------------------

def test_env_reaches_the_job(c):
    env = dict(c.env, CRL_FROM_SUBMITTER="yes", CORRAL_GPUS="7", CORRAL_JOB_ID="999",
               CUDA_VISIBLE_DEVICES="1", NVIDIA_VISIBLE_DEVICES="all")
    out = c.ok("submit", "--json", "--cpus", "100m", "--env", "FOO=bar", "--env", "EQ=a=b", "--env", "EMPTY=",
               "--", "env", env=env)
    job = json.loads(out)["id"]
    assert c.wait(job).returncode == 0
    got = _env_of(c.logs(job))
    assert got["FOO"] == "bar"
    assert got["EQ"] == "a=b"
    assert got["EMPTY"] == ""
    assert got["CRL_FROM_SUBMITTER"] == "yes"  # the submitter's environment is exported
    # corral's own variables describe this job, not whatever the submitter had.
    assert got["CORRAL_JOB_ID"] == str(job)
    assert got["CORRAL_GPUS"] == ""
    # ... and a job without GPUs never inherits the submitter's GPU selection.
    assert got["CUDA_VISIBLE_DEVICES"] == "" and got["NVIDIA_VISIBLE_DEVICES"] == ""


@pytest.mark.parametrize("cpus, threads", [("100m", "1"), ("1", "1"), ("1500m", "1"), ("2", "2")])
def test_omp_num_threads_follows_the_cpu_request(c, cpus, threads):
    if NCPU < 2 and cpus in ("2", "1500m"):
        pytest.skip("needs 2 cores")
    job = c.submit("--cpus", cpus, "--", "env")
    assert c.wait(job).returncode == 0
    got = _env_of(c.logs(job))
    assert got["OMP_NUM_THREADS"] == threads
    assert got["MKL_NUM_THREADS"] == threads and got["OPENBLAS_NUM_THREADS"] == threads


def test_spec_env_overrides_thread_count(c):
    job = c.submit("--cpus", "1", "--env", "OMP_NUM_THREADS=7", "--", "env")
    assert c.wait(job).returncode == 0
    assert _env_of(c.logs(job))["OMP_NUM_THREADS"] == "7"


AFFINITY = f'{sys.executable} -c "import os; print(os.environ[\'CORRAL_CPUS\']); print(sorted(os.sched_getaffinity(0)))"'


def _pinning(c, *args: str) -> tuple[dict, str, list[int]]:
    job = c.submit(*args, "--", AFFINITY)
    assert c.wait(job).returncode == 0, c.logs(job, "--stderr")
    corral_cpus, affinity = c.logs(job).splitlines()
    return c.show(job), corral_cpus, eval(affinity)  # noqa: S307 - a list of ints we printed


@pytest.mark.parametrize("cpus", ["1", "2"])
def test_whole_cpu_jobs_are_pinned_to_their_cores(c, cpus):
    if int(cpus) > NCPU:
        pytest.skip(f"needs {cpus} cores")
    view, corral_cpus, affinity = _pinning(c, "--cpus", cpus)
    assert len(view["cpus"]) == int(cpus)
    assert affinity == sorted(view["cpus"])
    assert corral_cpus == ",".join(map(str, affinity))
    assert set(affinity) <= os.sched_getaffinity(0)


def test_fractional_cpu_jobs_run_on_the_shared_pool(c):
    view, corral_cpus, affinity = _pinning(c, "--cpus", "100m")
    assert view["cpus"] == []
    assert corral_cpus == ",".join(map(str, affinity))
    # Nothing else holds a core now, so the shared pool is every core.
    assert affinity == sorted(os.sched_getaffinity(0))


def test_fractional_job_avoids_cores_held_by_a_whole_cpu_job(c, tmp_path):
    if NCPU < 2:
        pytest.skip("needs 2 cores")
    gate = tmp_path / "gate"
    holder = c.submit("--cpus", "1", "--", gate_cmd(gate))
    held = c.wait_state(holder, "Running")["cpus"]
    try:
        view, corral_cpus, affinity = _pinning(c, "--cpus", "100m")
        assert set(affinity).isdisjoint(held)
        assert affinity == sorted(os.sched_getaffinity(0) - set(held))
        assert corral_cpus == ",".join(map(str, affinity))
    finally:
        gate.touch()
    assert c.wait(holder).returncode == 0


# daemon restart (it replaces the shared daemon; the next tests use the new one) -----------

def test_down_then_ps_starts_the_daemon_again(c):
    done = c.submit("--cpus", "100m", "--", "true")
    assert c.wait(done).returncode == 0
    old = c.up()["health"]["pid"]
    res = c.down()
    assert (res.returncode, res.stdout) == (0, "corral daemon stopped\n")
    wait_until(lambda: not proc_alive(old), timeout=10, what="the daemon to exit")
    res = c.down()
    assert (res.returncode, res.stdout) == (0, "corral daemon is not running\n")

    jobs = c.ps("-a")  # starts a new daemon, which has kept the history
    assert done in [j["id"] for j in jobs]
    assert all(j["state"] in ("Succeeded", "Failed", "Cancelled") for j in jobs)
    up = c.up()
    assert up["already_running"] is True
    assert up["health"]["pid"] not in (None, old)
    node = c.node()
    assert node["simulated_gpus"] is True and len(node["gpus"]) == 2  # --simulate-gpus is kept
    job = c.submit("--gpus", "2", "--cpus", "100m", "--", "true")
    assert c.wait(job).returncode == 0
