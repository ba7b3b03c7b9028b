"""Denoise-v0's optional predictor: action 9 takes the predictor's pixel; without a predictor the
actions and rewards are PixelRL's nine filters' as before; pixelrl_filter_select(prediction=...)."""

import pytest
import torch

from envs.denoise import PREDICT_ACTION, DenoiseVectorEnv
from rlenhance.ops import PIXELRL_ACTIONS, pixelrl_filter_bank, select_per_pixel
from rlenhance.ops.bank import pixelrl_filter_select

SIZE = 16


def tiny_data(channels=1, n=2):
    g = torch.Generator().manual_seed(0)
    return [{"high": torch.rand(channels, 24, 24, generator=g), "name": f"img{i}"} for i in range(n)]


def random_actions(n_actions, batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, n_actions, (batch, 1, SIZE, SIZE), generator=g)


def pixelrl_reward(clean, before, after):
    """Denoise-v0's reward map: decrease of squared error x 255, channel mean."""
    return ((clean - before).square() - (clean - after).square()).mean(dim=1, keepdim=True) * 255.0


def test_without_a_predictor_the_actions_and_rewards_are_pixelrls():
    venv = DenoiseVectorEnv(num_envs=2, crop=SIZE, max_episode_steps=3, data=tiny_data())
    assert venv.task.actions == PIXELRL_ACTIONS and venv.task.n_actions == 9 and venv.task.prediction is None
    assert int(venv.single_action_space.nvec.max()) == 9
    obs, _ = venv.reset(seed=3)
    for step in range(3):
        actions = random_actions(9, seed=step)
        before = obs["image"].clone()
        obs, reward, *_, info = venv.step(actions)
        expected = select_per_pixel(pixelrl_filter_bank(before), actions)  # the nine filters, as PixelRL
        torch.testing.assert_close(obs["image"], expected, atol=1e-6, rtol=0)
        torch.testing.assert_close(info["reward_map"], pixelrl_reward(venv.task.clean, before, obs["image"]))
        torch.testing.assert_close(reward, info["reward_map"].mean(dim=(1, 2, 3)))
    with pytest.raises(ValueError, match=r"0\.\.8"):  # no tenth action
        venv.reset(seed=0)
        venv.step(torch.full((2, 1, SIZE, SIZE), 9))


def test_a_predictor_that_is_never_taken_changes_nothing():
    plain = DenoiseVectorEnv(num_envs=2, crop=SIZE, max_episode_steps=3, data=tiny_data())
    calls = []

    def predictor(noisy):
        calls.append(noisy.clone())
        return torch.full_like(noisy, 0.5)

    with_predictor = DenoiseVectorEnv(num_envs=2, crop=SIZE, max_episode_steps=3, data=tiny_data(),
                                      predictor=predictor)
    assert with_predictor.task.actions == (*PIXELRL_ACTIONS, PREDICT_ACTION)
    assert int(with_predictor.single_action_space.nvec.max()) == 10
    obs_a, _ = plain.reset(seed=5)
    obs_b, _ = with_predictor.reset(seed=5)
    assert len(calls) == 1 and torch.equal(calls[0], obs_b["image"])  # once per episode, on the noisy start
    assert torch.equal(obs_a["image"], obs_b["image"])
    for step in range(3):
        actions = random_actions(9, seed=10 + step)
        obs_a, reward_a, *_ = plain.step(actions)
        obs_b, reward_b, *_ = with_predictor.step(actions)
        assert torch.equal(obs_a["image"], obs_b["image"]) and torch.equal(reward_a, reward_b)
    assert len(calls) == 1


@pytest.mark.parametrize("channels", [1, 3])
def test_taking_the_predictors_pixel_everywhere_gives_the_prediction(channels):
    g = torch.Generator().manual_seed(channels)
    clean = torch.rand(2, channels, SIZE, SIZE, generator=g)
    noisy = clean + 0.1 * torch.randn(clean.shape, generator=g)
    venv = DenoiseVectorEnv(num_envs=2, crop=SIZE, max_episode_steps=2, data=tiny_data(channels),
                            gray=channels == 1, predictor=lambda x: clean.clone())  # an oracle: the clean image
    venv.reset(seed=0, options={"clean": clean, "noisy": noisy})
    obs, reward, *_, info = venv.step(torch.full((2, 1, SIZE, SIZE), 9))
    assert torch.equal(obs["image"], clean)
    torch.testing.assert_close(info["reward_map"], pixelrl_reward(clean, noisy, clean))
    assert bool((reward > 0).all())
    obs, reward, *_ = venv.step(torch.full((2, 1, SIZE, SIZE), 9))  # taken again: nothing left to gain
    assert torch.equal(obs["image"], clean) and torch.equal(reward, torch.zeros(2))


def test_mixed_actions_take_the_prediction_only_where_chosen():
    prediction = torch.rand(2, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    venv = DenoiseVectorEnv(num_envs=2, crop=SIZE, max_episode_steps=2, data=tiny_data(),
                            predictor=lambda x: prediction * 1.5 - 0.25)  # clamped to [0, 1] by the env
    obs, _ = venv.reset(seed=2)
    before = obs["image"].clone()
    actions = random_actions(10, seed=4)
    obs, *_ = venv.step(actions)
    take = actions == 9
    filters = select_per_pixel(pixelrl_filter_bank(before), actions.clamp(max=8))
    expected = torch.where(take, (prediction * 1.5 - 0.25).clamp(0, 1), filters)
    torch.testing.assert_close(obs["image"], expected, atol=1e-6, rtol=0)
    assert 0 < int(take.sum()) < take.numel()


def test_bad_predictors_are_named():
    with pytest.raises(TypeError, match="predictor: expected None or a callable"):
        DenoiseVectorEnv(num_envs=1, crop=SIZE, data=tiny_data(), predictor="mrpnet.pt")
    venv = DenoiseVectorEnv(num_envs=1, crop=SIZE, data=tiny_data(), predictor=lambda x: x[..., :-1, :])
    with pytest.raises(ValueError, match=r"predictor: returned \(1, 1, 15, 16\) for noisy images \(1, 1, 16, 16\)"):
        venv.reset(seed=0)


def test_filter_select_with_a_prediction():
    g = torch.Generator().manual_seed(7)
    x = torch.rand(2, 3, 9, 11, generator=g)
    prediction = torch.rand(2, 3, 9, 11, generator=g)
    actions = torch.randint(0, 10, (2, 1, 9, 11), generator=g)
    out = pixelrl_filter_select(x, actions, prediction=prediction)
    filters = select_per_pixel(pixelrl_filter_bank(x), actions.clamp(max=8))
    torch.testing.assert_close(out, torch.where(actions == 9, prediction, filters), atol=1e-6, rtol=0)
    no_nine = actions.clamp(max=8)
    assert torch.equal(pixelrl_filter_select(x, no_nine, prediction=prediction), pixelrl_filter_select(x, no_nine))
    with pytest.raises(ValueError, match=r"actions must be in \[0, 8\]"):  # without a prediction: nine actions
        pixelrl_filter_select(x, actions)
    with pytest.raises(ValueError, match=r"actions must be in \[0, 9\]"):
        pixelrl_filter_select(x, actions + 1, prediction=prediction)
    with pytest.raises(ValueError, match="prediction: expected a tensor of x's shape"):
        pixelrl_filter_select(x, actions, prediction=prediction[:, :1])


@pytest.mark.parametrize("channels", [1, 3])
def test_observe_prediction_adds_the_prediction_to_the_observation(channels):
    """With ``observe_prediction`` the observation holds the episode's prediction next to the image
    (a Box of the image's planes in [0, 1]); the image, actions and rewards are those of the same
    env without it; without a predictor the option is refused by name."""
    def predictor(noisy):
        return (noisy * 0.5 + 0.25).clamp(0, 1)

    kwargs = dict(num_envs=2, crop=SIZE, max_episode_steps=2, data=tiny_data(channels), gray=channels == 1,
                  predictor=predictor)
    plain, seeing = DenoiseVectorEnv(**kwargs), DenoiseVectorEnv(**kwargs, observe_prediction=True)
    assert set(plain.single_observation_space.spaces) == {"image"}
    space = seeing.single_observation_space["prediction"]
    assert space.shape == (channels, SIZE, SIZE) and float(space.low.min()) == 0 and float(space.high.max()) == 1
    obs_a, _ = plain.reset(seed=4)
    obs_b, _ = seeing.reset(seed=4)
    torch.testing.assert_close(obs_b["image"], obs_a["image"])
    torch.testing.assert_close(obs_b["prediction"], predictor(obs_b["image"]))
    for step in range(2):
        actions = random_actions(10, seed=step)
        obs_a, reward_a, *_ = plain.step(actions)
        obs_b, reward_b, *_ = seeing.step(actions)
        torch.testing.assert_close(obs_b["image"], obs_a["image"])
        torch.testing.assert_close(reward_b, reward_a)
        torch.testing.assert_close(obs_b["prediction"], seeing.task.prediction)  # fixed over the episode
    with pytest.raises(ValueError, match="observe_prediction: .*give a predictor"):
        DenoiseVectorEnv(num_envs=1, crop=SIZE, data=tiny_data(), observe_prediction=True)
