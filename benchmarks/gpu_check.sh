#!/usr/bin/env bash
# The GPU check (issue 17), one command on a machine with CUDA:
#   1. the gpu-marked tests (pytest -m gpu: tests/test_device.py and any later ones);
#   2. bench_compare.py's 7B-shaped bf16 pair compared with --device cuda, against reading both files
#      cold and warm (the target: the warm compare <= 10 s on an H100/H200);
#   3. a fingerprint of the 7B-shaped base built with --device cuda, against a warm read of its files.
# On a machine without CUDA it prints one line and exits 0.
#
#   benchmarks/gpu_check.sh                 # 32 layers: two ~13.5 GB checkpoints, built once under WORKDIR
#   LAYERS=4 benchmarks/gpu_check.sh        # a quick run (~2.4 GB each)
#   PYTHON=.venv/bin/python WORKDIR=/scratch/provenance-bench benchmarks/gpu_check.sh
#   GPU_CHECK_DEVICE=cpu LAYERS=1 benchmarks/gpu_check.sh   # rehearse every step on the CPU (the tests skip)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
LAYERS=${LAYERS:-32}
WORKDIR=${WORKDIR:-/tmp/provenance-bench}
DEVICE=${GPU_CHECK_DEVICE:-cuda}

if [ "$DEVICE" = cuda ] && ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "gpu_check: no CUDA device here (torch.cuda.is_available() is False): nothing to run"
    exit 0
fi

echo "== device: $DEVICE"
"$PY" -c "
import torch
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(f'{p.name}, {p.total_memory / 2**30:.0f} GiB, torch {torch.__version__}, CUDA {torch.version.cuda}')
else:
    print(f'no CUDA: a rehearsal on the CPU, torch {torch.__version__}')"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"

echo
echo "== 1. gpu-marked tests"
status=0
"$PY" -m pytest -q -m gpu -p no:randomly tests/ || status=$?

echo
echo "== 2. ${LAYERS}-layer 7B-shaped bf16 pair: compare --device $DEVICE against the read of both"
"$PY" benchmarks/bench_compare.py --layers "$LAYERS" --workdir "$WORKDIR" --device "$DEVICE" \
    --only raw-cold raw-direct-cold raw-warm compare-cold compare-warm || status=$?

echo
echo "== 3. fingerprint of the base with --device $DEVICE against a warm read of its files"
BASE=$("$PY" benchmarks/bench_compare.py --layers "$LAYERS" --workdir "$WORKDIR" --build | tail -n 1 |
       "$PY" -c "import json, sys; print(json.load(sys.stdin)['base'])")
"$PY" - "$BASE" "$DEVICE" <<'EOF' || status=$?
import subprocess, sys, tempfile, time
from pathlib import Path

sys.path.insert(0, "benchmarks")
import bench_io

base, device = Path(sys.argv[1]), sys.argv[2]
bench_io._measure_raw(base)  # warm the page cache
start = time.perf_counter()
nbytes = bench_io._measure_raw(base)
read = time.perf_counter() - start
with tempfile.TemporaryDirectory() as tmp:
    out = Path(tmp) / "base.fingerprint"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "provenance", "fingerprint", str(base), "-o", str(out),
                    "--device", device, "--no-hash"], check=True)
    wall = time.perf_counter() - start
    size = out.stat().st_size
print(f"fingerprint --device {device}: {wall:.2f} s wall (fresh CLI process, imports and CUDA start included), "
      f"warm read of the {nbytes / 1e9:.1f} GB: {read:.2f} s -> {wall / read:.1f} x; fingerprint {size / 2**20:.1f} MiB")
EOF
exit $status
