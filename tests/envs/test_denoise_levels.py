"""Denoise-v0's noise-level map actions (``level_scales``): the policy scales FFDNet's map per pixel;
the map starts at the image's level, the state is FFDNet's output for the map, the reward its
decrease of squared error; and the noise ramp (a level that varies across the image)."""

import math
from pathlib import Path

import pytest
import torch

from envs.denoise import DenoiseVectorEnv
from rlenhance.data import add_gaussian_noise, noise_ramp
from rlenhance.denoisers import DenoisePredictor
from rlenhance.transitions import DenoiseTransition, TransitionError

ROOT = Path(__file__).resolve().parents[2]
FFDNET = ROOT / "rlenhance" / "weights" / "ffdnet_denoise.pt"
MRPNET = ROOT / "rlenhance" / "weights" / "mrpnet_denoise.pt"
SCALES = (0.5, 1.0, 2.0)
SIZE = 32


def tiny_data(n=2):
    g = torch.Generator().manual_seed(0)
    ramp = torch.linspace(0.2, 0.8, 40).expand(40, 40)
    return [{"high": (ramp + 0.1 * torch.rand(40, 40, generator=g))[None], "name": f"img{i}"} for i in range(n)]


@pytest.fixture(scope="module")
def ffdnet():
    return DenoisePredictor(FFDNET, channels=1, device="cpu")


def level_env(ffdnet, **kwargs):
    return DenoiseVectorEnv(num_envs=2, crop=SIZE, max_episode_steps=2, data=tiny_data(), predictor=ffdnet,
                            level_scales=SCALES, sigma=(10.0, 50.0), **kwargs)


def test_the_transition_scales_the_map_and_clamps_it():
    t = DenoiseTransition(predict=True, clip=False, steps=2, level_scales=SCALES, max_level=75.0)
    assert t.sets_level and t.actions == ("level x0.5", "level x1", "level x2")
    level = torch.tensor([[[[10.0, 10.0, 60.0]]]])
    scaled = t.next_level(level, torch.tensor([[[[0, 2, 2]]]]))
    torch.testing.assert_close(scaled, torch.tensor([[[[5.0, 20.0, 75.0]]]]))
    assert DenoiseTransition.from_dict(t.to_dict()) == t
    # a filter transition written before the map's fields existed reads as one without them
    old = DenoiseTransition.from_dict({"task": "denoise", "predict": True, "clip": False, "steps": 5})
    assert not old.sets_level and len(old.actions) == 10
    with pytest.raises(TransitionError, match="level_scales .* finite numbers > 0"):
        DenoiseTransition(predict=True, clip=False, steps=1, level_scales=(1.0, -2.0))
    with pytest.raises(TransitionError, match="needs predict"):
        DenoiseTransition(predict=False, clip=False, steps=1, level_scales=SCALES)


def test_the_map_starts_at_the_images_level_and_the_state_is_ffdnets_output(ffdnet):
    venv = level_env(ffdnet)
    assert venv.task.n_actions == 3 and set(venv.single_observation_space.spaces) == {"image", "level"}
    obs, _ = venv.reset(seed=1)
    task = venv.task
    noisy = obs["image"]
    level = task.level
    # the map is each image's estimated level, everywhere; the state is FFDNet's output for it
    torch.testing.assert_close(level, ffdnet.levels(noisy).expand_as(level))
    torch.testing.assert_close(task.image, ffdnet(noisy), atol=1e-5, rtol=0)
    torch.testing.assert_close(obs["level"][:, :1], level / DenoiseTransition.LEVEL_PLANE_SCALE)
    keep = torch.ones(2, 1, SIZE, SIZE, dtype=torch.long)  # x1 everywhere: nothing changes, reward 0
    obs, reward, *_, info = venv.step(keep)
    torch.testing.assert_close(obs["image"], noisy)  # the policy keeps seeing the noisy image
    assert float(info["reward_map"].abs().max()) < 1e-4
    before = task.image.clone()
    actions = torch.zeros(2, 1, SIZE, SIZE, dtype=torch.long)
    actions[..., SIZE // 2:] = 2  # halve the left half's level, double the right half's
    _, reward, *_, info = venv.step(actions)
    expected_level = level * torch.where(actions == 2, 2.0, 0.5)
    torch.testing.assert_close(task.level, expected_level.clamp(0, 75))
    torch.testing.assert_close(task.image, ffdnet.with_level(noisy, task.level))
    clean = task.clean
    gain = ((clean - before).square() - (clean - task.image).square()) * 255.0
    torch.testing.assert_close(info["reward_map"], gain)
    torch.testing.assert_close(reward, gain.mean(dim=(1, 2, 3)))


def test_the_map_needs_a_noise_map_denoiser():
    with pytest.raises(ValueError, match="level_scales: .* noise-map denoiser"):
        DenoiseVectorEnv(num_envs=1, crop=SIZE, data=tiny_data(), level_scales=SCALES)
    mrpnet = DenoisePredictor(MRPNET, channels=1, device="cpu")
    assert not mrpnet.reads_level
    with pytest.raises(ValueError, match="level_scales: .* noise-map denoiser"):
        DenoiseVectorEnv(num_envs=1, crop=SIZE, data=tiny_data(), predictor=mrpnet, level_scales=SCALES)


def test_the_noise_ramp_varies_the_level_across_each_crop(ffdnet):
    venv = level_env(ffdnet, noise_ramp=True)
    venv.reset(seed=2)
    residual = (venv.task.noisy - venv.task.clean) * 255
    # a ramp: the two halves of a crop differ in level along its direction
    for row in residual:
        halves = [row[..., :, :SIZE // 2].std(), row[..., :, SIZE // 2:].std(),
                  row[..., :SIZE // 2, :].std(), row[..., SIZE // 2:, :].std()]
        assert all(8.0 < float(h) < 55.0 for h in halves)
    same = level_env(ffdnet, noise_ramp=True)
    same.reset(seed=2)
    torch.testing.assert_close(same.task.noisy, venv.task.noisy)  # seeded


def test_the_policy_reads_the_noises_local_strength_against_the_map():
    t = DenoiseTransition(predict=True, clip=False, steps=1, level_scales=SCALES)
    clean = torch.linspace(0, 1, 200).expand(1, 1, 200, 200)  # smooth shading: no diagonal detail
    level = torch.full((1, 1, 200, 200), 30.0)
    assert float((t.level_observation(clean, level)[:, 1] - math.log(1 / 31)).abs().max()) < 1e-3
    noisy = add_gaussian_noise(clean, 40.0, generator=torch.Generator().manual_seed(0))
    ratio = t.level_observation(noisy, level)[:, 1].mean()
    assert abs(float(ratio.exp()) * 31 - 1 - 40.0) < 2.0  # the local noise level, read against the map's


def test_noise_ramp_goes_linearly_between_its_levels():
    ramp = noise_ramp((3, 5), torch.tensor([10.0, 20.0]), torch.tensor([50.0, 40.0]),
                      torch.tensor([0.0, math.pi / 2]))
    torch.testing.assert_close(ramp[0, 0, 1], torch.tensor([10.0, 20.0, 30.0, 40.0, 50.0]))
    torch.testing.assert_close(ramp[1, 0, :, 2], torch.tensor([20.0, 30.0, 40.0]))
    noisy = add_gaussian_noise(torch.zeros(1, 1, 200, 400), noise_ramp((200, 400), 10.0, 50.0),
                               generator=torch.Generator().manual_seed(0))
    left, right = (float(noisy[..., :, cols].std() * 255) for cols in (slice(0, 40), slice(360, 400)))
    assert 10 < left < 16 and 44 < right < 50


def test_reward_blur_credits_each_pixel_with_its_neighbourhoods_gain(ffdnet):
    plain, blurred = level_env(ffdnet), level_env(ffdnet, reward_blur=5)
    actions = torch.randint(0, 3, (2, 1, SIZE, SIZE), generator=torch.Generator().manual_seed(0))
    maps = []
    for venv in (plain, blurred):
        venv.reset(seed=4)
        maps.append(venv.step(actions)[-1]["reward_map"])
    expected = torch.nn.functional.avg_pool2d(maps[0], 5, stride=1, padding=2, count_include_pad=False)
    torch.testing.assert_close(maps[1], expected)
    with pytest.raises(ValueError, match="reward_blur: expected an odd box size"):
        level_env(ffdnet, reward_blur=4)


def test_level_error_starts_drawn_episodes_off_the_estimate_and_given_ones_on_it(ffdnet):
    venv = level_env(ffdnet, level_error=2.0)
    obs, _ = venv.reset(seed=6)
    ratio = venv.task.level[:, 0, 0, 0] / ffdnet.levels(obs["image"])[:, 0, 0, 0]
    assert bool(((ratio >= 0.5 - 1e-4) & (ratio <= 2.0 + 1e-4)).all()) and float((ratio - 1).abs().max()) > 1e-3
    torch.testing.assert_close(venv.task.image, ffdnet.with_level(obs["image"], venv.task.level))
    given = {"clean": venv.task.clean, "noisy": obs["image"]}
    venv.reset(seed=7, options=given)
    torch.testing.assert_close(venv.task.level, ffdnet.levels(obs["image"]).expand_as(venv.task.level))
    with pytest.raises(ValueError, match="level_error: expected a factor >= 1"):
        level_env(ffdnet, level_error=0.5)
