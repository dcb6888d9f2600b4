"""GPU isolation: 6 one-GPU jobs on 4 simulated GPUs, never oversubscribed."""

from __future__ import annotations

from corral_harness import gate_cmd, wait_until

#: Each job records its GPUs and its start/end times (date +%s.%N) in its stdout.
JOB = ('echo "start $(date +%s.%N)"; echo "cvd=$CUDA_VISIBLE_DEVICES"; '
       'echo "nvd=$NVIDIA_VISIBLE_DEVICES"; sleep 1; echo "end $(date +%s.%N)"')


def _record(text: str) -> dict:
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ") if line.startswith(("start ", "end ")) else line.partition("=")
        out[key] = value
    return out


def test_six_one_gpu_jobs_on_four_gpus(corral4):
    c = corral4
    ids = [c.submit("--gpus", "1", "--cpus", "100m", "--name", f"g{i}", "--", JOB) for i in range(6)]

    # Poll `corral ps --json` while they run: at most 4 running, each on its own GPU.
    seen_running: set[int] = set()

    def poll():
        jobs = {j["id"]: j for j in c.ps("--all") if j["id"] in ids}
        running = [j for j in jobs.values() if j["state"] == "Running"]
        assert len(running) <= 4, running
        gpus = [g for j in running for g in j["gpus"]]
        assert len(gpus) == len(set(gpus)), f"a GPU is given to two running jobs: {running}"
        for j in running:
            assert len(j["gpus"]) == 1 and 0 <= j["gpus"][0] <= 3, j
            seen_running.add(j["id"])
        for j in jobs.values():
            if j["state"] == "Pending" and j["reason"] == "InsufficientResources":
                assert "nvidia.com/gpu" in j["message"], j
        return all(j["state"] in ("Succeeded", "Failed", "Cancelled") for j in jobs.values())

    wait_until(poll, timeout=60, interval=0.05, what="all six jobs to end")
    assert seen_running  # the polls did see jobs running

    res = c.wait(*ids)
    assert res.returncode == 0, res.stdout + res.stderr
    for line, job_id in zip(res.stdout.splitlines(), ids):
        assert line.startswith(f"job {job_id}: Succeeded"), res.stdout

    records = {}
    for job_id in ids:
        view = c.show(job_id)
        assert (view["state"], view["reason"], view["exit_code"]) == ("Succeeded", "Completed", 0), view
        rec = _record(c.logs(job_id))
        assert set(rec) == {"start", "cvd", "nvd", "end"}, rec
        # Each job sees exactly one GPU index 0-3, the one the daemon says it holds.
        assert rec["cvd"] in {"0", "1", "2", "3"}, rec
        assert rec["nvd"] == rec["cvd"], rec
        assert [int(rec["cvd"])] == view["gpus"], (rec, view)
        records[job_id] = (float(rec["start"]), float(rec["end"]), rec["cvd"])

    # The recorded intervals: never more than 4 at once, and overlapping jobs on different GPUs.
    for job_id, (start, _end, _) in records.items():
        at_once = [j for j, (s, e, _) in records.items() if s <= start <= e]
        assert len(at_once) <= 4, f"{len(at_once)} jobs running at {start}: {records}"
    for a, (sa, ea, ga) in records.items():
        for b, (sb, eb, gb) in records.items():
            if a < b and sa < eb and sb < ea:
                assert ga != gb, f"jobs {a} and {b} overlapped in time on GPU {ga}: {records}"
    # Six jobs on four GPUs: some GPU was used twice, so some jobs had to wait.
    assert len({g for _, _, g in records.values()}) <= 4

    # Everything released.
    assert set(c.gpu_holders().values()) == {None}


def test_job_without_gpu_sees_empty_cuda_visible_devices(corral4):
    c = corral4
    job = c.submit("--cpus", "100m", "--", "env")
    assert c.wait(job).returncode == 0
    lines = c.logs(job).splitlines()
    # Present but empty: a job never sees a GPU it was not given.
    assert "CUDA_VISIBLE_DEVICES=" in lines, lines
    assert "NVIDIA_VISIBLE_DEVICES=" in lines, lines
    assert c.show(job)["gpus"] == []


def test_gpu_env_matches_allocation_for_multi_gpu_job(corral4):
    c = corral4
    job = c.submit("--gpus", "2", "--cpus", "100m", "--", "env")
    assert c.wait(job).returncode == 0
    env = dict(line.split("=", 1) for line in c.logs(job).splitlines() if "=" in line)
    gpus = c.show(job)["gpus"]
    assert len(gpus) == 2 and len(set(gpus)) == 2
    assert env["CUDA_VISIBLE_DEVICES"] == ",".join(map(str, gpus))
    assert env["NVIDIA_VISIBLE_DEVICES"] == env["CUDA_VISIBLE_DEVICES"]
    assert env["CORRAL_GPUS"] == env["CUDA_VISIBLE_DEVICES"]
    assert env["CORRAL_JOB_ID"] == str(job)


def test_multi_gpu_jobs_get_nvlinked_pairs(corral4, tmp_path):
    """Simulated GPUs come in NVLink pairs (0-1, 2-3): a 2-GPU job gets a whole pair, and
    a 1-GPU job takes the GPU whose partner is already busy rather than break a pair."""
    c = corral4
    links = {g["index"]: g["links"] for g in c.node()["gpus"]}
    assert links[0]["1"] == "NVLINK" and links[2]["3"] == "NVLINK" and links[0]["2"] != "NVLINK"
    gate = tmp_path / "gate"
    first = c.submit("--gpus", "1", "--cpus", "100m", "--", gate_cmd(gate))
    g_first = c.wait_state(first, "Running")["gpus"]
    pair = c.submit("--gpus", "2", "--cpus", "100m", "--", gate_cmd(gate))
    g_pair = c.wait_state(pair, "Running")["gpus"]
    single = c.submit("--gpus", "1", "--cpus", "100m", "--", gate_cmd(gate))
    g_single = c.wait_state(single, "Running")["gpus"]
    pairs = ({0, 1}, {2, 3})
    assert set(g_pair) in pairs
    assert set(g_first) | set(g_single) in pairs  # the other pair, shared by the two 1-GPU jobs
    assert c.gpu_holders() == {g_first[0]: first, g_single[0]: single, g_pair[0]: pair, g_pair[1]: pair}
    gate.touch()
    assert c.wait(first, pair, single).returncode == 0
