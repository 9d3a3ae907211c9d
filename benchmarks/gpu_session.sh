#!/bin/bash
# The GPU checks of one short device session, in one command: the CUDA tests, a measured profile
# of a catalog model (random weights), and a live-against-simulated validation with it.
#
# Sized for ~6 minutes on one H200 with llama-2-7b (2026-12-04): tests 10 s, model build and
# grids ~90 s (--budget-s 60), validation of 12 requests ~2-3 min (the eager executor runs ~40 ms
# an iteration there). The engine-overhead runs are left out (--overhead-rounds 0): on that
# model they take 10-30 s each, ~20 minutes for every policy.
#
#   MODEL=llama-2-7b HW=h200 N=12 BUDGET=60 bash benchmarks/gpu_session.sh
#   MODEL=tiny-llama DEVICE=cpu HW=cpu-dry N=12 BUDGET=10 bash benchmarks/gpu_session.sh   # a dry run here
#
# Results land in $OUT (the device tool's folder there; /tmp/gpu_session here): versions, the
# CUDA tests' tail, the profile JSON (also written to profiles/data/), and the validation
# directory as a tarball. Packages the machine lacks (simpy: see /work/.library/device) go in
# as wheels from .whl/ when WHEELS=1.
set -o pipefail
MODEL=${MODEL:-llama-2-7b}; DEVICE=${DEVICE:-cuda}; HW=${HW:-h200}; N=${N:-12}; BUDGET=${BUDGET:-60}
OUT=${OUT:-/tmp/gpu_session}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if [ -n "$WHEELS" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
python3 -c "import sys, torch, transformers; print(sys.version.split()[0], torch.__version__, transformers.__version__,
torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA')" 2>&1 | tee "$OUT/versions.txt"
if [ "$DEVICE" != cpu ]; then
  (nvidia-smi || true) > "$OUT/nvidia-smi.txt" 2>&1
  timeout 120 python3 -m pytest -q -m cuda -p no:cacheprovider tests/executor/test_cuda.py \
    tests/executor/test_distributed_cuda.py 2>&1 | tail -15 | tee "$OUT/cuda_tests.log"
fi
PROFILE=profiles/data/${MODEL}_${HW}_tp1.json
# tail: the progress bars are one line of carriage returns
timeout 200 python3 -m fastserve profile --model "$MODEL" --device "$DEVICE" --hardware "$HW" --budget-s "$BUDGET" \
  --overhead-rounds 0 -o "$PROFILE" 2>&1 | tail -5 | tee "$OUT/profile.log"
cp "$PROFILE" "$OUT/" || exit 1
TRACE="synth:num_requests=$N,rate=4,lengths=sharegpt-multiturn-like,max_total_tokens=1024,seed=1"
rm -rf /tmp/gpu_session_validate
timeout 240 python3 -m fastserve validate --model "$MODEL" --device "$DEVICE" --profile "$PROFILE" --trace "$TRACE" \
  --load 0.8 -o /tmp/gpu_session_validate 2>&1 | tail -25 | tee "$OUT/validate.log"
tar czf "$OUT/validate.tgz" -C /tmp gpu_session_validate
