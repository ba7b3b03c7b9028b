#!/bin/sh
# The low-light policy for uneven light: about 2.5 h on 1 CPU core (five runs, each from the one before).
set -e
DATA=${DATA:-../shared/data}
LOCAL="--preset local-light --data $DATA/sice_pairs/train --threads 1"
# runs 1-3: the reference tone-mapped to the target, not scaled; half the episodes relit, narrower ranges
FIRST="--set reward.terms=reference=300 --set task.uneven=0.5 --set ranges.w_exposure=0,1000 \
    --set ranges.w_spatial=0,100 --set ranges.w_smooth=0.1,100"
python -m experiments.lol_train --preset uneven-light --data "$DATA/sice_pairs/train" --threads 1 --out runs/local_0
python -m experiments.lol_train $LOCAL $FIRST --init-policy runs/local_0/checkpoints/last.pt --out runs/local_1
python -m experiments.lol_train $LOCAL $FIRST --set run.episodes=2500 --init-policy runs/local_1/checkpoints/last.pt \
    --out runs/local_2
python -m experiments.lol_train $LOCAL $FIRST --init-policy runs/local_2/checkpoints/last.pt --out runs/local_3
python -m experiments.lol_train $LOCAL --init-policy runs/local_3/checkpoints/episode_003000.pt --out runs/local_4
# the last run's last evaluation, no pick; its goals on the tuning split
python -m benchmarks.lowlight_goals --split tune --checkpoint runs/local_4/checkpoints/episode_003000.pt
cp runs/local_4/checkpoints/episode_003000.pt rlenhance/weights/lowlight_local.pt
