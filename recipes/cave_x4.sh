#!/usr/bin/env bash
# The paper's recipe on the CAVE scenes at x4 (docs/results.md): train the LKCA-Net teacher,
# analyse its upsampler's rank, train LKCA-LR from scratch and LKCA-KD with the teacher, train
# VDSR and 3D-FCNN, convert the teacher to grouped and SVD upsamplers, and evaluate all into one table.
#
#     bash recipes/cave_x4.sh runs/cave_x4                 # CPU size: 4 blocks of 64 features
#     SIZE="" STEPS=100000 bash recipes/cave_x4.sh runs/x  # the paper's 16 blocks of 128 (GPU)
#
# The scene split is configs/cave.py's (lkca_jax.data.registry.CAVE_SCENES: 11 train, 1 validation,
# 4 test). Each step is an ordinary command; rerunning resumes or skips what is done.
set -euo pipefail
OUT=${1:-runs/cave_x4}
STEPS=${STEPS:-800}
SIZE=${SIZE---config.model.depth 4 --config.model.features 64}
PY=${PY:-python}
COMMON="--config.train.num_steps $STEPS --config.train.batch_size 16 --config.train.learning_rate ${LR:-5e-4}
        --config.train.log_every_steps 100
        --config.train.eval_every_steps 500 --config.train.checkpoint_every_steps 500"

# shellcheck disable=SC2086
$PY train.py --config configs/cave.py:x4,net --workdir "$OUT/lkca_net" $SIZE $COMMON
$PY -m lkca_jax rank --workdir "$OUT/lkca_net" --out "$OUT/rank"
# shellcheck disable=SC2086
$PY train.py --config configs/cave.py:x4,lr --workdir "$OUT/lkca_lr" $SIZE $COMMON
# shellcheck disable=SC2086
$PY train.py --config configs/cave.py:x4,kd --workdir "$OUT/lkca_kd" $SIZE $COMMON \
    --config.teacher.workdir "$OUT/lkca_net"
# shellcheck disable=SC2086
$PY train.py --config configs/cave.py:x4,vdsr --workdir "$OUT/vdsr" $COMMON
# shellcheck disable=SC2086
$PY train.py --config configs/cave.py:x4,fcnn3d --workdir "$OUT/fcnn3d" $COMMON
$PY evaluate.py --config configs/cave.py:x4,bicubic --workdir "$OUT/bicubic"
RANK=$($PY -c "import json,sys; print(next(iter(json.load(open(sys.argv[1])).values()))['rank90'])" "$OUT/rank/rank.json")
for TO in grouped:8 "svd:$RANK"; do
    NAME="lkca_net_${TO/:/}"
    [ -f "$OUT/$NAME/config.json" ] || $PY -m lkca_jax lowrank convert --workdir "$OUT/lkca_net" --to "$TO" --out "$OUT/$NAME"
    $PY evaluate.py --workdir "$OUT/$NAME"
done
$PY -m lkca_jax table --out "$OUT/table.md" --workdir "$OUT/bicubic" --workdir "$OUT/vdsr" --workdir "$OUT/fcnn3d" \
    --workdir "$OUT/lkca_net" --workdir "$OUT/lkca_lr" --workdir "$OUT/lkca_kd" \
    --workdir "$OUT/lkca_net_grouped8" --workdir "$OUT/lkca_net_svd$RANK"
