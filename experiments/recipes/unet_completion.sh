#!/bin/sh
# The completion U-Net: eight runs, each fine-tuning the one before (widths 32 -> 48 -> 64, then the
# hole-PSNR loss, then left-right flips only: the preset unet-completion); about 11 h on 2 CPU cores.
# The last two ship their last epoch; the others their best.pt, picked on the validation split the
# scores are on.
set -e
DATA=${DATA:-../shared/data}
U="--model unet --task completion --data $DATA/bedroom/train --set data.shift_holes=true --steps-per-epoch 100
   --set train.lr_decay=cosine --set data.val_samples=90 --set run.samples=4"
t() { python -m experiments.supervised_train $U "$@"; }
t --epochs 30 --lr 1e-3 --threads 2 --seed 0 --out runs/unet1
t --epochs 20 --lr 3e-4 --threads 2 --seed 1 --init runs/unet1/checkpoints/best.pt --out runs/unet2
t --epochs 30 --lr 2e-4 --threads 1 --seed 2 --init runs/unet2/checkpoints/best.pt --out runs/unet3
t --epochs 40 --lr 1.5e-4 --threads 1 --seed 3 --init runs/unet3/checkpoints/best.pt --out runs/unet4
t --width 48 --epochs 110 --lr 3e-4 --threads 2 --seed 5 --init runs/unet4/checkpoints/best.pt --out runs/unet5
t --width 64 --epochs 72 --lr 2e-4 --threads 2 --seed 6 --init runs/unet5/checkpoints/best.pt --out runs/unet6
t --width 64 --set train.hole_loss=psnr --epochs 64 --lr 1e-4 --threads 2 --seed 7 \
    --init runs/unet6/checkpoints/best.pt --out runs/unet7
python -m experiments.supervised_train --preset unet-completion --data "$DATA/bedroom/train" \
    --init runs/unet7/checkpoints/last.pt --out runs/unet8
cp runs/unet8/checkpoints/model_epoch64.pt rlenhance/weights/unet_completion.pt
