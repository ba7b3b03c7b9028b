"""benchmarks.learned_headroom: a full-information learner of per-block choices, scored held out."""

import numpy as np
import pytest
import torch

from benchmarks import learned_headroom as lh


def _samples(n: int, seed: int) -> list[lh.Sample]:
    """16 x 16 samples whose candidate 1 beats candidate 0 exactly in the blocks the view marks (candidate 2
    never does): a learner that reads the view gains, one that does not cannot."""
    generator = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        marked = (torch.rand(1, 1, 2, 2, generator=generator) < 0.5).float()
        view = torch.nn.functional.interpolate(marked, scale_factor=lh.BLOCK)[0]
        clean = torch.rand(1, 16, 16, generator=generator)
        cands = torch.stack([clean + 0.1, clean + torch.where(view > 0, 0.02, 0.3), clean + 0.5])
        out.append((view, cands, clean, torch.ones_like(clean)))
    return out


def test_block_gains_are_candidate_0s_error_minus_each_ones_per_block_pixel_inside_the_weight():
    clean = torch.zeros(1, 1, 8, 16)
    cands = torch.stack([torch.full((1, 8, 16), 0.2), torch.full((1, 8, 16), 0.1)])[None]
    weight = torch.ones(1, 1, 8, 16)
    weight[..., 8:] = 0
    gains = lh.block_gains(cands, clean, weight)
    assert gains.shape == (1, 2, 1, 2)
    assert gains[0, 1, 0, 0].item() == pytest.approx(0.04 - 0.01)
    assert gains[0, 0].abs().max() == 0 and gains[0, 1, 0, 1] == 0  # outside the weight nothing is gained


def test_choose_switches_a_block_only_above_the_margin_and_stitch_places_each_choice():
    predicted = torch.tensor([[[[0.0, 0.0]], [[0.3, -0.1]], [[0.1, -0.2]]]])  # (1, 3, 1, 2)
    assert lh.choose(predicted, 0.0).flatten().tolist() == [1, 0]
    assert lh.choose(predicted, 0.5).flatten().tolist() == [0, 0]
    cands = torch.arange(3.0).view(1, 3, 1, 1, 1).expand(1, 3, 1, 8, 16)
    out = lh.stitch(cands, torch.tensor([[[[2, 1]]]]))
    assert out[0, 0, :, :8].unique().tolist() == [2.0] and out[0, 0, :, 8:].unique().tolist() == [1.0]


def test_the_learner_finds_a_gain_the_view_predicts_on_held_out_samples_and_the_oracle_bounds_it():
    learner, scale = lh.fit(_samples(48, 0), steps=150, seed=0)
    rows = lh.gains_at(learner, _samples(12, 1), (0.0, float("inf")))
    learned, never, oracle = rows.mean(axis=0)
    assert learned > 1.0  # cand 1 where marked: about 7 dB better in those blocks
    assert never == 0.0
    assert oracle >= learned - 1e-9
    assert scale > 0


def test_denoise_main_prints_the_tuned_margin_row(tmp_path, capsys):
    from rlenhance.io import save_image
    rng = np.random.default_rng(0)
    for name in ("a", "b", "c"):
        save_image(tmp_path / f"{name}.png", rng.uniform(0.2, 0.8, (100, 104, 3)).astype(np.float32))
    lh.main(["--task", "denoise", "--data", str(tmp_path), "--steps", "2"])
    out = capsys.readouterr().out
    row = [line for line in out.splitlines() if line.startswith("| ") and not line.startswith("| margin")]
    assert len(row) == 1 and "15 candidates" in out
    assert float(row[0].split("|")[1]) in lh.MARGINS


def test_a_training_image_smaller_than_the_crops_is_refused_by_size():
    with pytest.raises(ValueError, match="50 x 40 pixels, smaller than the 96 x 96"):
        lh.denoise_samples(None, [np.zeros((40, 50), np.float32)], 25.0, 0, lh.CROPS)
