"""`make demo-ray`: corral in front of a Ray cluster, on this machine.

Starts a local 3-node Ray cluster (fake GPUs: 2 per node, n1's are A100s), a corral
daemon in a private home with `engine: {type: ray}`, then submits through the real CLI:
seven one-GPU jobs (one waits: 6 GPUs), a job that wants A100s, a job without GPUs and a 2-node
gang. It prints `corral nodes`, `corral ps` and the jobs' output, then stops the daemon
and exactly the Ray processes it started.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from corral.executors.ray import launch_root
from corral.executors.ray.cluster import LocalRayCluster, NodeSpec

GiB = 2**30


def main() -> int:
    home = tempfile.mkdtemp(prefix="corral-ray-demo-", dir="/tmp")
    work = tempfile.mkdtemp(prefix="corral-ray-work-", dir="/tmp")
    cluster = LocalRayCluster([NodeSpec("n0", cpus=4, gpus=2, memory=4 * GiB),
                               NodeSpec("n1", cpus=4, gpus=2, gpu_model="A100", memory=4 * GiB),
                               NodeSpec("n2", cpus=4, gpus=2, memory=4 * GiB)])
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORRAL_")}
    env.update(CORRAL_HOME=home, **{k: cluster.env[k] for k in ("RAY_AUTH_MODE", "RAY_USAGE_STATS_ENABLED",
                                                                 "RAY_TMPDIR")})

    def corral(*args: str, check: bool = True) -> str:
        res = subprocess.run(["corral", *args], env=env, cwd=work, capture_output=True, text=True, timeout=120)
        if check and res.returncode != 0:
            raise SystemExit(f"corral {' '.join(args)} failed: {res.stderr.strip()}")
        return res.stdout

    def submit(*args: str) -> str:
        return str(json.loads(corral("submit", "--json", *args))["id"])

    def show(title: str, text: str) -> None:
        print(f"\n$ {title}\n{text.rstrip()}")

    print("starting a local Ray cluster of 3 nodes (about 30 s) ...", flush=True)
    try:
        cluster.start()
        with open(os.path.join(home, "config.yaml"), "w") as f:
            f.write(f"engine: {{type: ray, address: \"{cluster.address}\"}}\n")
        show("corral up", corral("up"))
        ids = [submit("--name", f"train-{i}", "--gpus", "1", "--", "sh", "-c",
                      "echo on $CORRAL_NODE GPU $CUDA_VISIBLE_DEVICES; sleep 3") for i in range(7)]
        ids.append(submit("--name", "a100", "--gpus", "A100:2", "--", "sh", "-c",
                          "echo A100s on $CORRAL_NODE: $CUDA_VISIBLE_DEVICES"))
        ids.append(submit("--name", "cpu-only", "--cpus", "500m", "--", "sh", "-c",
                          'echo "CUDA_VISIBLE_DEVICES=[$CUDA_VISIBLE_DEVICES] (no GPUs)"'))
        ids.append(submit("--name", "ddp", "--nodes", "2", "--gpus", "2", "--", "sh", "-c",
                          "echo rank $RANK of $WORLD_SIZE, master $MASTER_ADDR:$MASTER_PORT"))
        time.sleep(2)
        show("corral ps", corral("ps"))
        show("corral nodes (summary)", "\n".join(corral("nodes").splitlines()[:5]))
        corral("wait", *ids, check=False)
        show("corral ps -a", corral("ps", "-a"))
        for job_id in ids:
            show(f"corral logs {job_id}", corral("logs", job_id))
        show("corral down", corral("down"))
        return 0
    finally:
        subprocess.run(["corral", "down"], env=env, capture_output=True, timeout=60)
        cluster.stop()
        shutil.rmtree(launch_root(home), ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
