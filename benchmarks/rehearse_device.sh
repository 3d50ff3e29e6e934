#!/usr/bin/env bash
# The device run, rehearsed on this CPU in a device-like environment (docs/gpu.md).
#
# 1. A Python 3.12 virtual environment holding only packages of the device
#    image ("cuda", listed in the device tool's KINDS.md: jax 0.11.2, numpy 2.5,
#    flax, optax, orbax, chex, absl, pillow, matplotlib, opencv, tensorboard, protobuf
#    6.x, and the image's packages that the carried wheels need: cloudpickle, psutil,
#    pyarrow, requests, tqdm, wrapt, attrs, six, pyyaml, packaging, zipp, fsspec; no grain, tfds, ml_collections, array_record, tensorboardX),
#    with CPU jaxlib. Made once in $REHEARSAL_VENV (default /tmp/snnjax_device_venv).
# 2. A copy of what the device call receives: the tracked and untracked-not-ignored
#    files and .gpu_carry (python -m benchmarks.gpu_carry pack, made first if absent).
# 3. There, the device command itself, `bash benchmarks/gpu_run.sh`, with the
#    backend set to cpu, no TFDS_DATA_DIR (the dataset is rebuilt from the carry,
#    as on the device) and a tiny model and schedule given as extra arguments.
#
#     bash benchmarks/rehearse_device.sh            # results in /tmp/rehearsal_out
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
venv=${REHEARSAL_VENV:-/tmp/snnjax_device_venv}
python312=${PYTHON312:-$(command -v python3.12 || ls /root/.pyenv/versions/3.12*/bin/python3.12 | head -1)}
if [ ! -x "$venv/bin/python" ]; then
    "$python312" -m venv "$venv"
    "$venv/bin/pip" install -q "jax==0.11.2" "jaxlib==0.11.2" "numpy>=2.5,<2.6" flax optax \
        orbax-checkpoint chex absl-py pillow matplotlib opencv-python-headless tensorboard \
        "protobuf>=6.31,<7" cloudpickle psutil pyarrow requests tqdm wrapt attrs six pyyaml \
        packaging zipp fsspec
fi
if [ ! -d "$repo/.gpu_carry/wheels" ]; then
    (cd "$repo" && .venv/bin/python -m benchmarks.gpu_carry pack)
fi
work=$(mktemp -d /tmp/rehearsal_tree.XXXX)
(cd "$repo" && git ls-files -co --exclude-standard -z | xargs -0 cp -P --parents -t "$work" \
    && cp -r .gpu_carry "$work/")
out=${OUT:-/tmp/rehearsal_out}
rm -rf "$out" /tmp/gpu_tfds /tmp/gpu_run /tmp/site
cd "$work"
env -u TFDS_DATA_DIR -u PYTHONPATH -u XLA_FLAGS OUT="$out" PYTHON="$venv/bin/python" \
    JAX_PLATFORMS=cpu REQUIRE_BACKEND=cpu BUDGET_S="${BUDGET_S:-900}" TRAIN_S="${TRAIN_S:-240}" \
    JAX_LOG_COMPILES=1 \
    bash benchmarks/gpu_run.sh \
    '--config.model.widths=(8,16,32,64)' --config.num_train_steps=8 --config.warmup_epochs=0.005 --config.batch_size=64 \
    --config.eval_batch_size=500 --config.max_eval_batches=2 --config.validation_examples=500 \
    --config.eval_every_epochs=1 --config.log_every_steps=3 --repeats=2 --variant_s=60 "$@"
