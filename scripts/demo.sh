#!/usr/bin/env bash
# `make demo`: corral on its embedded defaults -- a local daemon, an SQLite store, and
# (without real GPUs) 4 simulated GPUs -- running a small sweep that asks for more GPUs
# than exist, so you can watch jobs queue with a reason, run on their own GPUs, finish.
set -euo pipefail

export CORRAL_HOME="${CORRAL_DEMO_HOME:-$PWD/.demo/home}"
if [ "${#CORRAL_HOME}" -gt 90 ]; then   # Unix socket paths are limited to 107 bytes
  CORRAL_HOME="$(mktemp -d /tmp/corral-demo.XXXXXX)"
fi
say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

corral down >/dev/null 2>&1 || true
rm -rf "$CORRAL_HOME"
mkdir -p "$CORRAL_HOME"

gpus=$(python -c 'from corral.capacity.gpu import detect_gpus; print(len(detect_gpus()[0]))')
if [ "$gpus" -gt 0 ]; then
  echo "Found $gpus NVIDIA GPU(s): using them."
  say corral up
  total=$gpus
else
  echo "No NVIDIA GPU found: corral will simulate 4 (marked 'simulated' everywhere)."
  say corral up --simulate-gpus 4
  total=4
fi
say corral nodes

# Each run first waits for its data to be staged (a file the demo creates once you have
# seen the queue), so the queue is there to look at on a fast machine as on a slow one.
ready="$CORRAL_HOME/data-ready"
train='echo "lr=$LR: training on GPU(s) [$CUDA_VISIBLE_DEVICES], cores [$CORRAL_CPUS], OMP_NUM_THREADS=$OMP_NUM_THREADS"
while [ ! -e '"$ready"' ]; do sleep 0.2; done
for epoch in 1 2 3; do sleep 1; echo "lr=$LR epoch $epoch done"; done'

echo
echo "A sweep: 5 one-GPU runs and one 2-GPU run on $total GPUs -- more than fit at once."
ids=()
for lr in 0.1 0.03 0.01 0.003 0.001; do
  say corral submit --name "lr-$lr" --gpus 1 --cpus 250m --mem 256Mi --env "LR=$lr" -- "$train"
  ids+=("$(corral ps --json | python -c 'import json,sys; print(max(j["id"] for j in json.load(sys.stdin)["jobs"]))')")
done
say corral submit --name big-model --gpus 2 --cpus 500m --mem 512Mi --priority 10 --env LR=0.05 -- "$train"
ids+=("$(corral ps --json | python -c 'import json,sys; print(max(j["id"] for j in json.load(sys.stdin)["jobs"]))')")

echo
echo "A job that can never fit is refused at submit, nothing stored:"
say corral submit --name too-big --gpus $((total * 2)) -- true || true

# Until the scheduler has looked at every job (a fresh job's reason is "Queued").
for _ in $(seq 100); do
  corral ps --json | python -c 'import json,sys; sys.exit(any(j["reason"] == "Queued" for j in json.load(sys.stdin)["jobs"]))' && break
  sleep 0.1
done

echo
echo "What runs where, and what waits -- with the reason, its position in the queue and an estimate:"
say corral ps
waiting=$(corral ps --state Pending --json | python -c 'import json,sys; j=json.load(sys.stdin)["jobs"]; print(j[0]["id"] if j else "")')
[ -n "$waiting" ] && say corral show "$waiting"

echo
echo "Live usage of the running jobs (CPU, memory, GPUs; refreshes without --once):"
say corral top --once

echo
echo "The data is staged: watch the runs train, end and make room for the waiting ones:"
touch "$ready"
while :; do
  say corral ps
  left=$(corral ps --json | python -c 'import json,sys; print(len(json.load(sys.stdin)["jobs"]))')
  [ "$left" -eq 0 ] && break
  sleep 1.5
done

say corral ps --all
say corral wait "${ids[@]}"
say corral show "${ids[5]}"
say corral logs "${ids[5]}"

echo
echo "Limits hold: a job that keeps allocating past its 64Mi memory limit is stopped"
echo "(by the kernel in its own cgroup where corral may create cgroups, else by the watchdog):"
hog='python -c "import time
x = []
while True:
    x.append(bytearray(8 << 20)); time.sleep(0.02)"'
say corral submit --name leak --cpus 250m --mem 64Mi -- "$hog"
hog_id=$(corral ps --all --json | python -c 'import json,sys; print(max(j["id"] for j in json.load(sys.stdin)["jobs"]))')
say corral wait "$hog_id" || true
say corral usage --since 1h --by job
say corral down
echo
echo "State (SQLite store, job logs) is in $CORRAL_HOME. Next: corral --help, and README.md."
