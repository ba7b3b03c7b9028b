#!/bin/sh
# The blind gray FFDNet (sigma 0-75): four runs, each fine-tuning the one before; about 6 h on 2 CPU cores.
# The last is the preset ffdnet-denoise; the first three differ in learning rate, length and seed.
set -e
DATA=${DATA:-../shared/data}
F="--model ffdnet --task denoise --set data.noise=gaussian --sigma 0 15 25 50 75 --set data.sigma_draw=uniform
   --data $DATA/bsd/train432 --width 64 --crop 64 --batch 16 --set train.lr_decay=cosine --steps-per-epoch 100"
python -m experiments.supervised_train $F --lr 1e-3 --epochs 50 --threads 1 --seed 0 --out runs/ffdnet1
python -m experiments.supervised_train $F --lr 5e-4 --epochs 70 --threads 1 --seed 1 \
    --init runs/ffdnet1/checkpoints/best.pt --out runs/ffdnet2
python -m experiments.supervised_train $F --lr 3e-4 --epochs 240 --threads 2 --seed 2 \
    --init runs/ffdnet2/checkpoints/best.pt --out runs/ffdnet3
python -m experiments.supervised_train --preset ffdnet-denoise --data "$DATA/bsd/train432" \
    --init runs/ffdnet3/checkpoints/best.pt --out runs/ffdnet4
cp runs/ffdnet4/checkpoints/best.pt rlenhance/weights/ffdnet_denoise.pt
