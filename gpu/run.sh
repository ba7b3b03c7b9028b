#!/usr/bin/env bash
# GPU recipe of the noise-level map denoising policy (denoise_train --preset noise-map, docs/denoising.md):
# A3C on a GPU for about 5 minutes, then BSD68 scored against FFDNet (blind) with experiments.compare.
#
#   OUT=/some/folder bash gpu/run.sh            # from the repository root, on a machine with CUDA
#
# Data it reads, at the repository root (gpu_data/ is git-ignored; about 10 MB in all):
#   gpu_data/train/    the first 60 images (by name) of ../shared/data/bsd/train432
#   gpu_data/BSD68/    the 68 images of ../shared/data/bsd/BSD68
#   gpu_data/wheels/   gymnasium-1.4.0-py3-none-any.whl and farama_notifications-0.0.6-py3-none-any.whl
#                      (installed only when the machine's python lacks gymnasium)
# Writes to "$OUT/": best.pt (the policy), metrics.csv (validation scores per evaluation), train.csv,
# config.json, compare_ramp.md / compare_s25.md / compare_s50.md (BSD68, paired against FFDNet) and log.txt:
# 8 files.
# Settings (environment): TRAIN_SECONDS (240: training is stopped then; the best checkpoint so far is kept),
# EPISODES (3000), EVAL_EVERY (150), BATCH (64), DEVICE (cuda), COMPARE_LIMIT (0: all 68 images),
# TRAIN_ARGS (more denoise_train arguments, e.g. "--set a3c.entropy=0.005").
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:?set OUT to the folder for the results}
TRAIN_SECONDS=${TRAIN_SECONDS:-240}
EPISODES=${EPISODES:-3000}
EVAL_EVERY=${EVAL_EVERY:-150}
BATCH=${BATCH:-64}
DEVICE=${DEVICE:-cuda}
COMPARE_LIMIT=${COMPARE_LIMIT:-0}
TRAIN_ARGS=${TRAIN_ARGS:-}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1
export PYTHONUNBUFFERED=1
if ! "$PY" -c "import gymnasium" 2>/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/rl57_site \
        gpu_data/wheels/*.whl || exit 1
    export PYTHONPATH=/tmp/rl57_site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
for folder in gpu_data/train gpu_data/BSD68; do
    [ -d "$folder" ] || { echo "missing $folder (see the head of gpu/run.sh)"; exit 1; }
done
RUN=$(mktemp -d /tmp/rl57_run.XXXX)
echo "== training, at most ${TRAIN_SECONDS}s"
timeout --signal=INT "$TRAIN_SECONDS" "$PY" -m experiments.denoise_train --preset noise-map --data gpu_data/train \
    --device "$DEVICE" --batch "$BATCH" --episodes "$EPISODES" --eval-every "$EVAL_EVERY" --threads 4 \
    --samples 1 $TRAIN_ARGS --out "$RUN"
echo "== training exit $?"
for f in checkpoints/best.pt metrics.csv train.csv config.json; do
    [ -f "$RUN/$f" ] && cp "$RUN/$f" "$OUT/"
done
[ -f "$OUT/best.pt" ] || { echo "no best.pt: no evaluation finished"; exit 1; }
for setting in "ramp:--sigma 10 --sigma-to 50" "s25:--sigma 25" "s50:--sigma 50"; do
    name=${setting%%:*}
    echo "== compare $name"
    timeout 45 "$PY" -m experiments.compare --task denoise --data gpu_data/BSD68 --split all ${setting#*:} \
        --sigma-estimate --methods ffdnet,a3c --a3c "$OUT/best.pt" --paired-against ffdnet --device "$DEVICE" --limit "$COMPARE_LIMIT" \
        --threads 4 --out "$RUN/compare_$name" \
        && cp "$RUN/compare_$name/report.md" "$OUT/compare_$name.md"
done
echo "== done"
