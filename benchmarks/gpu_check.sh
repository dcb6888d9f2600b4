#!/usr/bin/env bash
# One-off check of corral on a machine with real NVIDIA GPUs (see docs/gpu.md).
# Run from the repo root:  OUT=/some/dir bash benchmarks/gpu_check.sh
# Needs no network: with no PyTorch it falls back to a CUDA-free check (nvidia-smi,
# pynvml, and libcuda through ctypes when present). Every step runs even if one fails;
# failures are listed at the end and make the exit status non-zero.
set -u
cd "$(dirname "$0")/.."
OUT="${OUT:-./gpu-check-out}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
LOG="$OUT/gpu_check.log"
: > "$LOG"
exec > >(tee -a "$LOG") 2>&1
FAILS=()
step() { echo; echo "== $1 =="; }
run() { # run NAME CMD...: one step, recorded as FAIL when the command fails
  local name="$1"; shift; step "$name"; echo "\$ $*"
  "$@"; local rc=$?
  if [ $rc -ne 0 ]; then echo "FAIL: $name (exit $rc)"; FAILS+=("$name (exit $rc)"); fi
  return $rc
}
fail() { echo "FAIL: $1"; FAILS+=("$1"); }

# The jobs run on the system python (it may have torch), by its real path (not a shim).
SYS_PY="$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null || command -v python3)"
step "machine"
date -u; uname -a; nproc; echo "python3: $SYS_PY $($SYS_PY -V 2>&1)"
run "nvidia-smi -L" nvidia-smi -L
run "nvidia-smi topo -m" nvidia-smi topo -m
if "$SYS_PY" -c 'import torch' 2>/dev/null; then
  HAVE_TORCH=1; echo "torch: $("$SYS_PY" -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda)')"
else
  HAVE_TORCH=0; echo "torch: NOT available -> CUDA-free check (nvidia-smi + pynvml; a libcuda"
  echo "  ctypes allocation stands in for PyTorch where libcuda loads; no matmuls)"
fi

# corral itself: .venv (make venv), else a system-site venv without deps, else PYTHONPATH=src.
step "install"
if [ -x .venv/bin/corral ]; then VENV=.venv; echo "using existing .venv"
elif PIP_RETRIES=1 PIP_DEFAULT_TIMEOUT=15 make venv; then VENV=.venv; echo "installed with: make venv"
elif rm -rf .venv-gpu && "$SYS_PY" -m venv --system-site-packages .venv-gpu \
     && .venv-gpu/bin/pip install -q --no-deps --no-build-isolation -e .; then
  VENV=.venv-gpu; echo "make venv failed (no network?); installed with: venv --system-site-packages + pip --no-deps"
else VENV=""; fail "install (using PYTHONPATH=src with the system python3)"; fi
if [ -n "$VENV" ]; then
  PY="$PWD/$VENV/bin/python"; export PATH="$PWD/$VENV/bin:$PATH"
else
  PY="$SYS_PY"; export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
  corral() { "$PY" -c 'import sys; from corral.cli.main import main; sys.exit(main())' "$@"; }
fi
"$PY" - <<'EOF'
import importlib
for mod in ("yaml", "psutil", "pynvml", "fastapi", "uvicorn", "pydantic", "corral"):
    try:
        m = importlib.import_module(mod); print(f"  {mod:9} ok {getattr(m, '__version__', '')}")
    except Exception as e:
        print(f"  {mod:9} MISSING ({e})")
EOF
run "pynvml" "$PY" -c '
from corral.capacity.gpu import detect_gpus, open_probe
devs, source = detect_gpus(); print(source)
p = open_probe(0, None); print("probe:", p and p.name)
if p: print("minor numbers:", p.minor_numbers()); [print(" ", s.to_dict()) for s in p.sample().values()]; p.close()'

export CORRAL_HOME="$(mktemp -d /tmp/corral-gpu.XXXXXX)"
WORK="$CORRAL_HOME/work"; mkdir -p "$WORK"; cd "$WORK"
echo "CORRAL_HOME=$CORRAL_HOME"
cat > gpu_job.py <<'EOF'
import ctypes, os, sys, time
print("CUDA_VISIBLE_DEVICES=%r NVIDIA_VISIBLE_DEVICES=%r" % (os.environ.get("CUDA_VISIBLE_DEVICES"),
      os.environ.get("NVIDIA_VISIBLE_DEVICES")), flush=True)
SECONDS, GIB = float(sys.argv[1]), 2**30
try:
    import torch
except ImportError:
    torch = None
if torch is not None:
    print("torch.cuda.device_count() =", torch.cuda.device_count(), flush=True)
    if SECONDS <= 0 or not torch.cuda.device_count():
        sys.exit(0)
    hold = torch.empty(4 * GIB // 4, dtype=torch.float32, device="cuda")   # ~4 GiB
    a = torch.randn(8192, 8192, device="cuda"); n = 0; end = time.time() + SECONDS
    print("allocated %.1f GiB on %s" % (torch.cuda.memory_allocated() / GIB, torch.cuda.get_device_name()), flush=True)
    while time.time() < end:
        for _ in range(20):
            a = (a @ a).clamp_(-1, 1); n += 1
        torch.cuda.synchronize()
    print("done: %d matmuls 8192^2 in %.0f s" % (n, SECONDS), flush=True)
    sys.exit(0)
print("torch unavailable: libcuda via ctypes instead (no matmuls)", flush=True)
try:
    cu = ctypes.CDLL("libcuda.so.1")
except OSError as e:
    print("no libcuda:", e); time.sleep(max(SECONDS, 0)); sys.exit(0)
count = ctypes.c_int(0); rc = cu.cuInit(0)
if rc == 0:
    cu.cuDeviceGetCount(ctypes.byref(count))
print("cuInit rc=%d, CUDA device count = %d" % (rc, count.value), flush=True)
if SECONDS > 0 and count.value:
    dev, ctx, ptr = ctypes.c_int(), ctypes.c_void_p(), ctypes.c_uint64()
    cu.cuDeviceGet(ctypes.byref(dev), 0); cu.cuCtxCreate_v2(ctypes.byref(ctx), 0, dev)
    print("cuMemAlloc 4 GiB rc=%d" % cu.cuMemAlloc_v2(ctypes.byref(ptr), ctypes.c_size_t(4 * GIB)), flush=True)
    time.sleep(SECONDS)
EOF

run "corral up" corral up
run "corral nodes" corral nodes
corral nodes --json 2>/dev/null | "$PY" -c '
import json, sys; n = json.load(sys.stdin); n = n.get("nodes", [n])[0] if isinstance(n, dict) else n[0]
g = n.get("gpus", []); print(len(g), "GPU(s) in the node:", [x.get("model") for x in g], "simulated:", any(x.get("simulated") for x in g))
sys.exit(0 if g and not any(x.get("simulated") for x in g) else 1)' || fail "corral nodes shows no real GPU"

submit() { # submit ARGS...: prints the new job's id
  local out; out=$(corral submit --json "$@") || return 1
  printf '%s' "$out" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["id"])'
}

step "submit GPU job"
JOB1=$(submit --name gpu-check --gpus 1 --cpus 2 --mem 16Gi -- "$SYS_PY" "$WORK/gpu_job.py" 40) \
  || fail "submit GPU job"
echo "job ${JOB1:-?}"
if [ -n "${JOB1:-}" ]; then
  sleep 25
  run "nvidia-smi while the job runs" nvidia-smi
  run "corral show $JOB1 (running)" corral show "$JOB1"
  run "corral top --once" corral top --once
  run "corral wait $JOB1" corral wait "$JOB1"
  run "corral show $JOB1 (ended)" corral show "$JOB1"
  run "corral logs $JOB1" corral logs "$JOB1"
  run "corral logs --stderr $JOB1" corral logs --stderr "$JOB1"
fi

step "submit job without GPU"
JOB2=$(submit --name no-gpu --cpus 1 --mem 4Gi -- "$SYS_PY" "$WORK/gpu_job.py" 0) || fail "submit job without GPU"
if [ -n "${JOB2:-}" ]; then
  run "corral wait $JOB2" corral wait "$JOB2"
  run "corral logs $JOB2 (expect empty devices, 0 GPUs)" corral logs "$JOB2"
  corral logs --stderr "$JOB2"
  LOG2="$(corral logs "$JOB2")"
  grep -q "CUDA_VISIBLE_DEVICES='' NVIDIA_VISIBLE_DEVICES=''" <<<"$LOG2" || fail "job without GPU: device variables not empty"
  if grep -q "no libcuda" <<<"$LOG2"; then echo "GPU count not checked: neither torch nor libcuda here"
  else grep -Eq "device_count\(\) = 0|device count = 0|cuInit rc=100" <<<"$LOG2" || fail "job without GPU saw a GPU"; fi
fi

run "corral usage --since 1h --by job" corral usage --since 1h --by job
run "corral down" corral down

echo; echo "== summary =="
if [ ${#FAILS[@]} -eq 0 ]; then echo "all steps passed; log: $LOG"; exit 0; fi
printf 'FAIL: %s\n' "${FAILS[@]}"; echo "${#FAILS[@]} step(s) failed; log: $LOG"; exit 1
