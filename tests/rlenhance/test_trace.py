"""rlenhance.trace: ActionTrace's counts and usage, the pictures of the actions, and every RL restorer's
restore_traced: the same output as restore, with the actions that make it (replayed through the
transition, they give the output)."""

import numpy as np
import pytest
import torch

from rlenhance.checkpoint import save_checkpoint
from rlenhance.completion import PolicyCompleter
from rlenhance.denoisers import PolicyDenoiser
from rlenhance.enhance import Enhancer, _working_image
from rlenhance.models.policy import PixelActorCritic
from rlenhance.models.rse import SOURCES, dominant_source
from rlenhance.rse import RSERestorer
from rlenhance.trace import (
    KEEP_COLOUR,
    OUTSIDE_REGION,
    PREDICT_COLOUR,
    ActionTrace,
    TracedRestorer,
    action_colours,
    action_map_image,
    legend_image,
    step_pictures,
    usage,
)
from tests.rlenhance.test_denoisers import noisy_image, policy_checkpoint, rse_checkpoint
from tests.rlenhance.test_enhance import RANGES, _spec


def _trace(region=None):
    maps = np.array([[[[0, 0], [1, 2]]], [[[2, 2], [2, 2]]]], dtype=np.int16)  # (2 steps, 1 plane, 2, 2)
    return ActionTrace(("keep", "blur", "predict"), maps, region=region)


# --- the data type -------------------------------------------------------------------------------------
def test_counts_and_usage_count_pixel_steps_of_the_region():
    trace = _trace()
    assert trace.steps == 2
    assert trace.counts().tolist() == [[2, 1, 1], [0, 0, 4]]
    np.testing.assert_allclose(trace.usage(), [2 / 8, 1 / 8, 5 / 8])
    np.testing.assert_allclose(trace.usage(per_step=True), [[0.5, 0.25, 0.25], [0, 0, 1]])
    inside = _trace(region=np.array([[False, False], [True, True]]))
    assert inside.counts().tolist() == [[0, 1, 1], [0, 0, 2]]
    np.testing.assert_allclose(inside.usage(), [0, 0.25, 0.75])


def test_usage_pools_the_pixel_steps_of_several_images():
    big = ActionTrace(("keep", "blur", "predict"), np.full((2, 1, 4, 4), 2, np.int16))  # 32 predict
    np.testing.assert_allclose(usage([_trace(), big]), [2 / 40, 1 / 40, 37 / 40])
    empty = _trace(region=np.zeros((2, 2), bool))
    assert np.isnan(usage([empty])).all()
    with pytest.raises(ValueError, match="no trace"):
        usage([])
    with pytest.raises(ValueError, match="other actions or steps"):
        usage([_trace(), ActionTrace(("keep", "blur"), np.zeros((2, 1, 2, 2), np.int16))])


@pytest.mark.parametrize("bad, match", [
    (dict(maps=np.zeros((1, 2, 2), np.int16)), "steps, P, H, W"),
    (dict(maps=np.zeros((1, 1, 2, 2), np.float32)), "integer"),
    (dict(maps=np.full((1, 1, 2, 2), 3, np.int16)), "action ids 3..3, expected 0..2"),
    (dict(region=np.ones((3, 2), bool)), "region"),
    (dict(values=(0.1, 0.2)), "values: 2 for 3 names"),
])
def test_a_trace_that_does_not_describe_actions_is_refused(bad, match):
    given = {"names": ("a", "b", "c"), "maps": np.zeros((1, 1, 2, 2), np.int16), **bad}
    with pytest.raises(ValueError, match=match):
        ActionTrace(**given)


# --- the pictures ----------------------------------------------------------------------------------------
def test_action_colours_keep_grey_predict_red_and_values_on_a_scale():
    colours = action_colours(_trace().names)
    assert tuple(colours[0]) == KEEP_COLOUR and tuple(colours[2]) == PREDICT_COLOUR
    assert len({tuple(c) for c in colours}) == 3
    many = [f"a{i}" for i in range(18)] + ["keep", "predict"]  # 20 actions, 20 colours
    plain = [f"a{i}" for i in range(20)]
    assert len({tuple(c) for c in action_colours(many)}) == 20 == len({tuple(c) for c in action_colours(plain)})
    valued = action_colours(("-0.3", "0", "+1"), (-0.3, 0.0, 1.0))
    assert tuple(valued[1]) == (247, 247, 247)  # zero: white
    assert valued[0][2] > valued[0][0] and valued[2][0] > valued[2][2]  # below zero bluish, above orange
    assert valued[0].sum() > valued[2].sum()  # -0.3 is paler than the largest magnitude


def test_action_map_image_colours_each_pixel_and_greys_out_the_rest():
    region = np.array([[True, False], [True, True]])
    trace = _trace(region=region)
    picture = action_map_image(trace, 0)
    colours = action_colours(trace.names)
    assert picture.dtype == np.uint8 and picture.shape == (2, 2, 3)
    assert (picture[0, 0] == colours[0]).all() and (picture[1, 1] == colours[2]).all()
    assert tuple(picture[0, 1]) == OUTSIDE_REGION
    large = action_map_image(trace, 1, size=(6, 4))
    assert large.shape == (6, 4, 3) and (large[3:, :2] == colours[2]).all()  # nearest: blocks stay blocks
    with pytest.raises(ValueError, match="2 step"):
        action_map_image(trace, 2)


def test_the_legend_shows_the_actions_taken_with_bars_as_long_as_their_shares():
    trace = ActionTrace(("keep", "blur", "predict"), np.array([[[[0, 2, 2, 2]]]], np.int16))
    legend = legend_image([trace], width=480)
    assert legend.dtype == np.uint8 and legend.shape[1] == 480 and legend.shape[2] == 3
    colours = action_colours(trace.names)
    pixels = [int((legend == colour).all(axis=-1).sum()) for colour in colours]
    assert pixels[1] == 0 and pixels[2] > 2 * pixels[0] > 0  # blur never taken; predict 75%, keep 25%


def test_step_pictures_caption_each_steps_most_taken_action():
    pictures, captions = step_pictures(_trace(), (4, 6))
    assert [p.shape for p in pictures] == [(4, 6, 3)] * 2
    assert captions == ["actions at step 1: keep 50.0%", "actions at step 2: predict 100.0%"]
    _, outside = step_pictures(_trace(region=np.zeros((2, 2), bool)), (2, 2))
    assert outside == ["actions at step 1: none in the region", "actions at step 2: none in the region"]


# --- the restorers ---------------------------------------------------------------------------------------
def _replay_denoise(denoiser, x, trace_maps, plane):
    image = denoiser.transition.start(x)
    for step in range(trace_maps.shape[0]):
        actions = torch.from_numpy(trace_maps[step, plane].astype(np.int64))[None, None]
        image = denoiser.transition.step(image, actions, None)
    return image.clamp(0, 1)[0].permute(1, 2, 0).numpy()


@pytest.mark.parametrize("tile", [4096, 15], ids=["whole", "tiled"])
def test_policy_denoiser_trace_replays_to_its_output(tmp_path, tile):
    path = policy_checkpoint(tmp_path / "p.pt", 1, dilations=(1, 2), branch_dilations=(), downscale=2,
                             block_actions=True, steps=3)
    denoiser = PolicyDenoiser(path, device="cpu", tile=tile)
    assert isinstance(denoiser, TracedRestorer)
    image = noisy_image(70, 61, 1, seed=2)
    out, trace = denoiser.restore_traced(image)
    np.testing.assert_array_equal(out, denoiser.restore(image))
    assert trace.names == denoiser.transition.actions and trace.maps.shape == (3, 1, 70, 61)
    even = trace.maps[..., :70, :60]  # one action per 2 x 2 block
    assert (even == np.repeat(np.repeat(even[..., ::2, ::2], 2, axis=-2), 2, axis=-1)).all()
    assert len(np.unique(trace.maps)) > 1  # the random policy varies its filters
    x = torch.from_numpy(image).permute(2, 0, 1)[None]
    np.testing.assert_allclose(_replay_denoise(denoiser, x, trace.maps, 0), out, atol=1e-5)


def test_a_gray_policy_on_colour_traces_each_plane(tmp_path):
    denoiser = PolicyDenoiser(policy_checkpoint(tmp_path / "p.pt", 1), device="cpu")
    rgb = noisy_image(17, 23, 3, seed=4)
    out, trace = denoiser.restore_traced(rgb, per_channel=True)
    np.testing.assert_array_equal(out, denoiser.restore(rgb, per_channel=True))
    assert trace.maps.shape == (denoiser.steps, 3, 17, 23)
    for plane in range(3):
        x = torch.from_numpy(rgb[..., plane:plane + 1]).permute(2, 0, 1)[None]
        np.testing.assert_allclose(_replay_denoise(denoiser, x, trace.maps, plane), out[..., plane:plane + 1],
                                   atol=1e-5)


def test_completion_trace_replays_to_its_output_and_covers_the_hole(tmp_path):
    completer = PolicyCompleter(policy_checkpoint(tmp_path / "c.pt", 3, task="completion", steps=3), device="cpu")
    image = np.clip(noisy_image(24, 30, 3, seed=1), 0, 1)
    mask = np.zeros((24, 30), bool)
    mask[6:16, 8:22] = True
    out, trace = completer.restore_traced(image, mask=mask)
    np.testing.assert_array_equal(out, completer.restore(image, mask=mask))
    assert (trace.region == mask).all() and trace.counts().sum() == 3 * mask.sum()
    hole = torch.from_numpy(mask.astype(np.float32))[None, None]
    x = torch.from_numpy(image).permute(2, 0, 1)[None] * (1 - hole)
    state = completer.transition.start(x, hole)
    for step in range(3):
        state = completer.transition.step(state, torch.from_numpy(trace.maps[step, 0].astype(np.int64))[None, None],
                                          hole)
    np.testing.assert_allclose(state.clamp(0, 1)[0].permute(1, 2, 0).numpy(), out, atol=1e-6)


def test_dominant_source_is_the_largest_share_of_the_new_pixel():
    # (strength, mix, predict) -> t, m, p: keep 1 - t; vae t(1-m)(1-p); neighbours t m (1-p); predict t p
    actions = torch.tensor([[-1.0, 0, 0], [1, -1, -1], [1, 1, -1], [1, 0, 1], [0.2, -0.8, -0.9]])
    ids = dominant_source(actions.T.reshape(1, 3, 1, 5))
    assert [SOURCES[i] for i in ids.flatten()] == ["keep", "vae", "neighbours", "predict", "vae"]
    assert dominant_source(actions[:, :2].T.reshape(1, 2, 1, 5)).flatten().tolist() == [0, 1, 2, 1, 1]


def test_rse_trace_has_one_map_per_round_step(tmp_path):
    restorer = RSERestorer(rse_checkpoint(tmp_path / "r.pt", 3), device="cpu")
    image = noisy_image(20, 24, 3, seed=3)
    out, trace = restorer.restore_traced(image)
    np.testing.assert_array_equal(out, restorer.restore(image))
    assert trace.names == SOURCES[:3] and trace.maps.shape == (restorer.spec.rounds * restorer.model.steps, 1, 20, 24)


@pytest.mark.parametrize("mode", ["mean", "argmax"])
def test_lowlight_trace_is_the_nearest_alpha_of_the_policys_choice(tmp_path, mode):
    torch.manual_seed(0)
    policy = PixelActorCritic(in_channels=6, out_channels=3, n_actions=27, width=8, downscale=2, cond_dim=5,
                              policy_head_gain=3.0)
    path = save_checkpoint(tmp_path / "policy.pt", model=policy, arch=policy.arch(),
                           extra={"spec": _spec(conditioned=True, setting_ranges=RANGES)})
    enhancer = Enhancer(path, device="cpu", max_side=32, alpha_mode=mode)
    image = np.random.default_rng(0).uniform(0, 0.2, (40, 56, 3)).astype(np.float32)
    out, trace = enhancer.restore_traced(image, exposure=0.5)
    np.testing.assert_array_equal(out, enhancer.restore(image, exposure=0.5))
    assert trace.values == enhancer.action_values and trace.names[6] == "α +0.00"
    chosen = []
    enhancer._rollout(_working_image(image, 32, enhancer.strip_pixels), enhancer.cond(exposure=0.5), chosen=chosen)
    assert trace.maps.shape == (enhancer.steps, 3, *chosen[0].shape[-2:])  # the policy's working resolution
    picked = np.asarray(enhancer.action_values)[trace.maps]
    chosen = torch.stack(chosen)[:, 0].numpy()
    # the nearest table entry of the mean alpha; the action itself in argmax mode
    assert np.abs(picked - chosen).max() <= (0.025 + 1e-6 if mode == "mean" else 1e-6)
    if mode == "argmax":
        assert len(np.unique(trace.maps)) > 1
