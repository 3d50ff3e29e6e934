#!/usr/bin/env bash
# The prepared one-accelerator run (docs/gpu.md): trains train/configs/gpu.py
# (default variant "fast") on CIFAR-10 with the in-memory input, evaluates the
# full test set, then benchmarks the train step of the same model, batch and
# dtype (windows = normal + dilated, grid 1x1, normal only) while time is
# left, and prints end-to-end img/s, step time, compile time, achieved
# TFLOP/s, the pipeline ratio, the windows cost and the test accuracy.
# Results go to $OUT (end_to_end.json, <mode>_metrics.jsonl,
# <mode>_summary.json, log.txt).
#
# On the device machine, from the repository root, with .gpu_carry carried
# (made here by `python -m benchmarks.gpu_carry pack`):
#     bash benchmarks/gpu_run.sh
# Extra arguments go to benchmarks/end_to_end.py. The CPU rehearsal of this very
# script in a device-like environment: bash benchmarks/rehearse_device.sh.
# BUDGET_S (default 540) is the wall budget of the whole script; TRAIN_S (default
# 170) each training run's time limit (config.time_limit_s; the run then saves,
# tests and summarises). Training comes first: the windowed model, then the same
# without windows; benchmark variants that would not fit are skipped.
set -uo pipefail
start=$(date +%s)
budget=${BUDGET_S:-540}
out=${OUT:-/tmp/gpu_run_out}
mkdir -p "$out"
py=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
# The GPU guard: JAX may use CUDA only (no silent fall-back to the host CPU), and
# the preflight below checks the backend. The CPU rehearsal sets both to cpu.
export JAX_PLATFORMS=${JAX_PLATFORMS:-cuda}
backend=${REQUIRE_BACKEND:-gpu}
# Grain, TFDS, ml_collections, tensorboardX, protobuf: carried as wheels where
# the machine lacks them (the device image does).
if ! "$py" -c "import grain, tensorflow_datasets, ml_collections, tensorboardX" 2>/dev/null; then
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .gpu_carry/wheels/*.whl || exit 1
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
# Every import, the versions, a jitted product on the GPU: fails in seconds, one line.
"$py" -m benchmarks.preflight --backend="$backend" 2>&1 | tee "$out/preflight.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || exit 1
# CIFAR-10: the shared copy where there is one, else rebuilt from the carry.
if [ -z "${TFDS_DATA_DIR:-}" ] || [ ! -d "$TFDS_DATA_DIR/cifar10/3.0.2" ]; then
    export TFDS_DATA_DIR=/tmp/gpu_tfds
    if [ ! -f "$TFDS_DATA_DIR/cifar10/3.0.2/cifar10-test.array_record-00000-of-00001" ]; then
        "$py" -m benchmarks.gpu_carry unpack "$TFDS_DATA_DIR" || exit 1
    fi
fi
"$py" -m benchmarks.preflight --backend="$backend" --data 2>&1 | tee -a "$out/preflight.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
echo "setup: $(( $(date +%s) - start )) s; TFDS_DATA_DIR=$TFDS_DATA_DIR"
left=$(( budget - ($(date +%s) - start) ))
workdir=${WORKDIR:-/tmp/gpu_run}
# Each training run stops at its time limit (saved, tested, summarised);
# end_to_end.json is rewritten after every run and benchmark variant; the hard
# stop 20 s after the budget still leaves whatever was written.
timeout --signal=KILL $(( left + 20 )) "$py" -m benchmarks.end_to_end \
    --config=train/configs/gpu.py --workdir="$workdir" --out="$out" \
    --deadline_s="$left" --require_backend="$backend" --modes=device \
    --train_variants="windows,no windows" --train_s="${TRAIN_S:-170}" \
    --variants="windows,grid 1x1" \
    "$@" 2>&1 | grep --line-buffered -v -e "OpenCV is not installed" | tee "$out/log.txt"
status=${PIPESTATUS[0]}
for run in "$workdir"/*/; do
    name=$(basename "$run")
    for f in metrics.jsonl summary.json; do
        [ -f "$out/${name}_$f" ] || { [ -f "$run$f" ] && cp "$run$f" "$out/${name}_$f"; }
    done
done
echo "gpu_run: exit $status after $(( $(date +%s) - start )) s; results in $out: $(ls "$out" | tr '\n' ' ')"
exit "$status"
