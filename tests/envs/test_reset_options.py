"""reset(options=...): images are checked (layout, channels, size, values) and bad ones named, in one line."""

import gymnasium as gym
import numpy as np
import pytest
import torch

import envs
from rlenhance.errors import ImageError


def lowlight(**kwargs):
    return gym.make("rlenhance/LowLight-v1", crop=16, **kwargs).unwrapped


def denoise(**kwargs):
    return gym.make("rlenhance/Denoise-v0", crop=16, **kwargs).unwrapped


def completion_options(size=16, batch=()):
    rng = np.random.default_rng(0)
    original = rng.uniform(0, 1, (*batch, 3, size, size)).astype(np.float32)
    mask = np.zeros((*batch, 1, size, size), np.float32)
    mask[..., 4:10, 5:12] = 1
    return {"occluded": original * (1 - mask), "original": original, "mask": mask}


def raises_one_line(error, match, reset, options):
    with pytest.raises(error, match=match) as info:
        reset(seed=0, options=options)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_hwc_image_is_named_with_the_transpose_that_fixes_it():
    low = np.full((16, 16, 3), 0.2, np.float32)
    message = raises_one_line(ImageError, r"options\['low'\]", lowlight().reset, {"low": low})
    assert "(16, 16, 3)" in message and "C=3" in message and "np.transpose(x, (2, 0, 1))" in message
    batch = np.full((2, 16, 16, 3), 0.2, np.float32)
    venv = envs.make_vec("rlenhance/LowLight-v1", num_envs=2, crop=16)
    message = raises_one_line(ImageError, r"options\['low'\]", venv.reset, {"low": batch})
    assert "np.transpose(x, (0, 3, 1, 2))" in message


@pytest.mark.parametrize("clean,match", [
    (np.zeros((3, 16, 16), np.float32), r"options\['clean'\]: expected \(C, H, W\) with C=1"),  # colour to a gray env
    (np.zeros((16, 16), np.float32), r"x\[None\]"),                                          # no channel axis
    (np.zeros((2, 1, 16, 16), np.float32), r"got \(2, 1, 16, 16\)"),                         # batch of 2 to B = 1
])
def test_wrong_rank_channels_or_batch_are_image_errors(clean, match):
    raises_one_line(ImageError, match, denoise().reset, {"clean": clean})


def test_nan_and_out_of_range_values_are_refused():
    low = np.full((3, 16, 16), 0.2, np.float32)
    low[0, 3, 4] = np.nan
    raises_one_line(ImageError, r"options\['low'\]: 1 NaN", lowlight().reset, {"low": low})
    message = raises_one_line(ImageError, r"options\['high'\]", lowlight().reset,
                              {"low": np.full((3, 16, 16), 0.2, np.float32), "high": np.full((3, 16, 16), 200.0)})
    assert "divide by 255" in message


def test_uint8_images_are_scaled_by_their_range():
    env = lowlight()
    low = np.full((3, 16, 16), 51, np.uint8)
    obs, _ = env.reset(seed=0, options={"low": low})
    np.testing.assert_allclose(obs["original"], 0.2, atol=1e-6)
    assert env.observation_space.contains(obs)


def test_image_of_another_size_than_the_observation_space_names_the_expected_size():
    env = lowlight()
    message = raises_one_line(ImageError, r"options\['low'\]: 20x24 pixels", env.reset,
                              {"low": np.full((3, 20, 24), 0.2, np.float32)})
    assert "16x16" in message and "crop=(20, 24)" in message


def test_wrong_size_mask_names_both_sizes():
    options = completion_options()
    options["mask"] = np.zeros((1, 12, 16), np.float32)
    env = gym.make("rlenhance/Completion-v0", crop=16).unwrapped
    message = raises_one_line(ImageError, r"options\['mask'\]", env.reset, options)
    assert "12x16" in message and "16x16" in message


def test_bool_mask_and_torch_tensors_are_accepted():
    options = completion_options(batch=(2,))
    venv = envs.make_vec("rlenhance/Completion-v0", num_envs=2, crop=16)
    expected, _ = venv.reset(seed=0, options=options)
    given = {key: torch.as_tensor(value) for key, value in options.items()}
    given["mask"] = given["mask"] > 0.5
    obs, _ = venv.reset(seed=0, options=given)
    for key in expected:
        assert torch.equal(obs[key], expected[key])


def test_denoise_noisy_may_leave_unit_range_but_must_be_finite():
    env = denoise()
    clean = np.full((1, 16, 16), 0.5, np.float32)
    noisy = clean + np.linspace(-0.8, 0.8, 16 * 16, dtype=np.float32).reshape(1, 16, 16)
    obs, _ = env.reset(seed=0, options={"clean": clean, "noisy": noisy})
    np.testing.assert_array_equal(obs["image"], noisy)
    assert env.observation_space.contains(obs)
    noisy[0, 0, 0] = np.inf
    raises_one_line(ImageError, r"options\['noisy'\]: 1 NaN or infinite", env.reset, {"clean": clean, "noisy": noisy})
    # with clip=True the observation space is Box(0, 1): the noisy image must be in [0, 1]
    noisy[0, 0, 0] = 1.5
    raises_one_line(ImageError, r"options\['noisy'\]: values span", denoise(clip=True).reset,
                    {"clean": clean, "noisy": noisy})


def test_denoise_clean_next_to_noisy_is_only_the_reference():
    # experiments.compare rolls policies out with the noisy input in both slots: it must be accepted
    noisy = np.linspace(-0.2, 1.2, 16 * 16, dtype=np.float32).reshape(1, 16, 16)
    obs, _ = denoise().reset(seed=0, options={"clean": noisy, "noisy": noisy})
    np.testing.assert_array_equal(obs["image"], noisy)
    # alone, "clean" is what the noise is added to: an image in [0, 1]
    raises_one_line(ImageError, r"options\['clean'\]: values span", denoise().reset, {"clean": noisy})


def test_bad_keys_are_value_errors_naming_the_keys():
    message = raises_one_line(ValueError, "accepted keys", lowlight().reset,
                              {"low": np.zeros((3, 16, 16), np.float32), "hihg": np.zeros((3, 16, 16), np.float32)})
    assert "hihg" in message and "'high'" in message
    with pytest.raises(ValueError) as info:
        lowlight().reset(seed=0, options={"high": np.zeros((3, 16, 16), np.float32)})
    assert not isinstance(info.value, ImageError) and "missing ['low']" in str(info.value)


def test_lowlight_cond_option_is_a_vector_per_image():
    env = lowlight(conditioned=True)
    low = np.full((3, 16, 16), 0.2, np.float32)
    cond = np.array([0.5, -0.5, 0.0, 0.25, 1.0], np.float32)
    obs, _ = env.reset(seed=0, options={"low": low, "cond": cond})
    np.testing.assert_array_equal(obs["cond"], cond)
    venv = envs.make_vec("rlenhance/LowLight-v1", num_envs=2, crop=16)
    obs, _ = venv.reset(seed=0, options={"low": np.stack([low, low]), "cond": np.stack([cond, -cond])})
    assert torch.equal(obs["cond"], torch.as_tensor(np.stack([cond, -cond])))
    raises_one_line(ValueError, r"options\['cond'\]: expected shape \(5,\)", env.reset, {"low": low, "cond": cond[:4]})
    cond[1] = np.nan
    raises_one_line(ValueError, r"options\['cond'\]: 1 NaN", env.reset, {"low": low, "cond": cond})
