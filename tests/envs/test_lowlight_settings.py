"""LowLight-v1's settings: per-weight sampling ranges and what a policy may be asked to follow;
ReLLIE's channel coupling and colour-ratio term."""

import numpy as np
import pytest
import torch

import envs
from envs.lowlight import COND_FIELDS, LowLightEnv, LowLightTask
from rlenhance import losses
from rlenhance.ops import couple_channels, le_curve
from tests.specs import RELLIE_LOWLIGHT

ENV_ID = "rlenhance/LowLight-v1"


def make(**kwargs):
    """A small ReLLIE-style env with ``kwargs`` (the tests' own settings on the mechanics' test bed)."""
    return envs.make_vec(ENV_ID, num_envs=kwargs.pop("num_envs", 2), crop=16, max_episode_steps=2,
                         **{**RELLIE_LOWLIGHT, **kwargs})


def decoded_cond(venv) -> np.ndarray:
    """The setting values (B, 5) behind the episode's encoded cond."""
    return (venv.task.cond * venv.cond_scale + venv.cond_offset).numpy()


def test_each_weight_is_drawn_from_its_own_range_and_the_ranges_are_reported():
    venv = make(num_envs=64, conditioned=True, w_color=20.0, w_smooth=0.0, weight_range=(1.0, 1.0),
                weight_ranges={"w_color": (5.0, 50.0), "w_spatial": (0.5, 4.0)}, exposure_range=(0.3, 0.8))
    venv.reset(seed=0)
    values = decoded_cond(venv)
    exposure, w_exposure, w_color, w_spatial, w_smooth = values.T
    assert 0.3 <= exposure.min() and exposure.max() <= 0.8 and exposure.std() > 0.05
    assert np.allclose(w_exposure, 10.0) and np.allclose(w_smooth, 0.0)  # fixed: --weight-range 1 1, and 0
    assert 5.0 - 1e-4 <= w_color.min() and w_color.max() <= 50.0 + 1e-4
    assert np.median(w_color) < 27.5  # log-uniform: the median is near the geometric middle (15.8)
    assert 0.5 - 1e-5 <= w_spatial.min() and w_spatial.max() <= 4.0 + 1e-5
    assert venv.task.setting_ranges == {"exposure_target": (0.3, 0.8), "w_color": (5.0, 50.0),
                                        "w_spatial": (0.5, 4.0)}
    # the encoding maps each sampling range onto [-1, 1]
    assert venv.task.cond.abs().max() <= 1.0 + 1e-5
    # the fixed setting is what a conditioned policy is evaluated with by default
    fixed = (venv.task.setting_cond(1) * venv.cond_scale + venv.cond_offset)[0].tolist()
    assert fixed == pytest.approx([0.6, 10.0, 20.0, 1.0, 0.0])


def test_an_unconditioned_env_follows_nothing():
    venv = make(weight_ranges={"w_color": (1.0, 10.0)})
    venv.reset(seed=0)
    assert venv.task.setting_ranges == {}
    assert np.allclose(decoded_cond(venv), [0.6, 10.0, 5.0, 1.0, 20.0], atol=1e-4)


def test_weight_range_factor_applies_to_weights_without_their_own():
    venv = make(num_envs=32, conditioned=True, weight_range=(0.5, 2.0), weight_ranges={"w_color": (1.0, 9.0)})
    assert venv.task.setting_ranges == {"exposure_target": (0.4, 0.7), "w_exposure": (5.0, 20.0),
                                        "w_color": (1.0, 9.0), "w_spatial": (0.5, 2.0), "w_smooth": (10.0, 40.0)}


@pytest.mark.parametrize("kwargs, message", [
    ({"weight_ranges": {"w_colour": (1.0, 2.0)}}, "unknown weight"),
    ({"weight_ranges": {"w_color": (6.0, 9.0)}}, r"weight_ranges\['w_color'\].*\(5\)"),  # must hold w_color = 5
    ({"weight_ranges": {"w_color": (-1.0, 9.0)}}, r"weight_ranges\['w_color'\]"),
    ({"channel_coupling": 1.5}, "channel_coupling"),
    ({"channel_coupling": 0.9, "alpha_channels": 1}, "alpha_channels=3"),
    ({"terms": {"color_ratio": -1.0}}, r"terms\['color_ratio'\]"),
    ({"terms": {"nope": 1.0}}, "unknown reward term 'nope'"),
    ({"uneven": 1.5}, "uneven"),
    ({"exposure_mean": -0.5}, "exposure_mean"),
    ({"exposure_mean": float("nan")}, "exposure_mean"),
])
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LowLightTask(1, crop=16, **{**RELLIE_LOWLIGHT, "conditioned": True, **kwargs})


def test_couple_channels_pulls_red_and_green_towards_blue():
    alpha = torch.tensor([0.2, -0.1, 0.6]).view(1, 3, 1, 1).expand(2, 3, 4, 5)
    coupled = couple_channels(alpha, 0.9)
    assert torch.allclose(coupled[:, 0], 0.9 * 0.6 + 0.1 * 0.2 * torch.ones(2, 4, 5))
    assert torch.allclose(coupled[:, 1], (0.9 * 0.6 - 0.1 * 0.1) * torch.ones(2, 4, 5))
    assert torch.equal(coupled[:, 2], alpha[:, 2])  # the reference keeps its own
    assert torch.equal(couple_channels(alpha, 0.0), alpha)
    assert torch.allclose(couple_channels(alpha, 1.0), alpha[:, 2:3].expand_as(alpha))
    one = torch.rand(1, 1, 3, 3)
    assert torch.equal(couple_channels(one, 0.9), one)  # one alpha for all channels: nothing to couple
    with pytest.raises(ValueError, match="coupling"):
        couple_channels(alpha, -0.1)


def test_coupled_damped_transition_is_rellies_update():
    """ReLLIE: R and G use 0.9 alpha_B + 0.1 alpha_own, then s <- 0.8 LE(s) + 0.2 s."""
    venv = make(num_envs=1, channel_coupling=0.9, damping=0.2)
    obs, _ = venv.reset(seed=0)
    actions = torch.zeros(1, 3, 16, 16, dtype=torch.long)
    actions[:, 0], actions[:, 1], actions[:, 2] = 26, 6, 16  # alphas 1.0, 0.0, 0.5
    before = obs["image"].clone()
    obs, *_ = venv.step(actions)
    alpha = torch.tensor([0.9 * 0.5 + 0.1 * 1.0, 0.9 * 0.5, 0.5]).view(1, 3, 1, 1)
    expected = 0.8 * le_curve(before, alpha) + 0.2 * before
    assert torch.allclose(obs["image"], expected.clamp(0, 1), atol=1e-6)


def test_color_ratio_term_penalises_hue_changes_only():
    low = torch.rand(1, 3, 16, 16) * 0.2 + 0.02
    scaled, tinted = low * 2.0, low * torch.tensor([2.0, 1.0, 1.0]).view(1, 3, 1, 1)
    values, loss_map = losses.color_ratio_loss(tinted, low, return_map=True)
    assert loss_map.shape == (1, 1, 16, 16) and torch.allclose(values, loss_map.mean(dim=(1, 2, 3)))
    assert float(losses.color_ratio_loss(scaled, low)) < 0.02 < float(values)

    def reward(w_color_ratio, action):
        venv = make(num_envs=1, terms={"color_ratio": w_color_ratio}, w_color=0.0, w_smooth=0.0)
        venv.reset(seed=3)
        return float(venv.step(action)[1][0])

    tint = torch.zeros(1, 3, 16, 16, dtype=torch.long)
    tint[:, 0] = 26  # brighten red alone: a hue change
    same = torch.full((1, 3, 16, 16), 26)  # brighten all three alike
    cost = {name: reward(0.0, action) - reward(20.0, action) for name, action in (("tint", tint), ("same", same))}
    # a hue change costs reward; brightening R, G and B alike costs less (the curve's own non-linearity)
    assert cost["tint"] > 2 * cost["same"] > 0
    assert reward(20.0, torch.full((1, 3, 16, 16), 6)) == 0.0  # the identity still earns exactly 0


def test_exposure_mean_adds_the_whole_images_exposure_error_to_every_pixel():
    def step(exposure_mean):
        venv = make(num_envs=1, exposure_mean=exposure_mean, w_exposure=10.0, w_color=0.0, w_spatial=0.0,
                    w_smooth=0.0, exposure_target=0.5)
        obs, _ = venv.reset(seed=5)
        before = obs["image"].clone()
        obs, reward, *_, info = venv.step(torch.full((1, 3, 16, 16), 26))  # alpha 1 everywhere: brighten
        return before, obs["image"], info["reward_map"]

    before, after, patches = step(0.0)
    _, _, both = step(2.0)
    gain = 10.0 * 2.0 * ((before.mean() - 0.5) ** 2 - (after.mean() - 0.5) ** 2)
    assert float(gain) > 0  # brightening a dark crop brings its mean closer to 0.5
    assert torch.allclose(both - patches, gain * torch.ones_like(patches), atol=1e-5)


def test_exposure_over_charges_errors_above_the_target_more_in_the_patches_and_the_mean():
    def step(exposure_over, target, low, exposure_mean=0.0):
        venv = make(num_envs=1, exposure_over=exposure_over, exposure_mean=exposure_mean, exposure_patch=8,
                    w_exposure=10.0, w_color=0.0, w_spatial=0.0, w_smooth=0.0, exposure_target=target)
        obs, _ = venv.reset(seed=5, options={"low": torch.full((1, 3, 16, 16), low)})
        before = obs["image"].clone()
        obs, reward, *_, info = venv.step(torch.full((1, 3, 16, 16), 26))  # alpha 1 everywhere: brighten
        return before.mean(), obs["image"].mean(), info["reward_map"]

    # below the target before and after the step: nothing changes
    before, after, symmetric = step(0.0, 0.8, 0.2, exposure_mean=4.0)
    assert after < 0.8
    assert torch.allclose(step(3.0, 0.8, 0.2, exposure_mean=4.0)[2], symmetric, atol=1e-6)
    # brightening past the target: every patch's error above it (the crop is uniform) and, with
    # exposure_mean, the mean's, count 1 + over times; the error below it before the step does not
    for mean_weight in (0.0, 4.0):
        before, after, symmetric = step(0.0, 0.4, 0.3, exposure_mean=mean_weight)
        assert before < 0.4 < after
        cost = 10.0 * 3.0 * (1.0 + mean_weight) * (after - 0.4) ** 2
        assert torch.allclose(symmetric - step(3.0, 0.4, 0.3, exposure_mean=mean_weight)[2],
                              cost * torch.ones_like(symmetric), atol=1e-4)
    with pytest.raises(ValueError, match="exposure_over"):
        make(exposure_over=-1.0)


def test_exposure_relative_scales_the_exposure_term_by_the_targets_square():
    def reward_maps(relative, target, floor=0.0):
        venv = make(num_envs=1, exposure_relative=relative, exposure_relative_floor=floor, exposure_mean=1.0,
                    w_exposure=10.0, w_color=0.0, w_spatial=0.0, w_smooth=0.0, exposure_target=0.4,
                    conditioned=True, exposure_range=(0.2, 0.8), weight_range=(1.0, 1.0))
        venv.reset(seed=2, options={"low": torch.full((1, 3, 16, 16), 0.1),
                                    "cond": venv.task.setting_cond(1, exposure_target=target)})
        return venv.step(torch.full((1, 3, 16, 16), 26))[-1]["reward_map"]

    for target, factor in ((0.4, 1.0), (0.2, 4.0), (0.8, 0.25)):  # (E_0 / E)^2, E_0 = 0.4 the default
        assert torch.allclose(reward_maps(True, target), factor * reward_maps(False, target), atol=1e-5)
    # a floor of 1: targets above the default weigh as it does; those below keep their larger factor
    for target, factor in ((0.4, 1.0), (0.2, 4.0), (0.8, 1.0)):
        assert torch.allclose(reward_maps(True, target, floor=1.0), factor * reward_maps(False, target), atol=1e-5)
    with pytest.raises(ValueError, match="exposure_relative_floor"):
        make(exposure_relative_floor=-0.5)


def test_cond_fields_are_unchanged():
    """Checkpoints depend on the order of the conditioning vector."""
    assert COND_FIELDS == ("exposure_target", "w_exposure", "w_color", "w_spatial", "w_smooth")


def test_smoothness_left_to_the_agent_is_a_setting_and_no_reward_term():
    """smooth_in_reward=False: w_smooth is sampled and encoded like the other weights, the reward has no
    smoothness term, and the reset's info hands each row's weight to the agent."""
    kwargs = dict(conditioned=True, weight_ranges={"w_smooth": (10.0, 400.0)}, w_smooth=40.0)
    venv = make(num_envs=4, smooth_in_reward=False, **kwargs)
    reference = make(num_envs=4, **kwargs)
    _, info = venv.reset(seed=1)
    assert reference.reset(seed=1)[1] == {}
    assert venv.task.setting_ranges["w_smooth"] == (10.0, 400.0)
    assert torch.equal(venv.task.cond, reference.task.cond)  # the same settings drawn and encoded
    assert torch.allclose(info["action_penalty_weight"], torch.from_numpy(decoded_cond(venv)[:, 4]))
    assert info["action_penalty_weight"].std() > 0  # one weight per row
    rough = torch.randint(0, 27, (4, 3, 16, 16), generator=torch.Generator().manual_seed(0))
    reward, ref_reward = venv.step(rough)[1], reference.step(rough)[1]
    assert torch.all(reward > ref_reward)  # the sampled alpha map's roughness costs nothing here
    alpha = venv.task.alpha(rough)
    smooth = losses.illumination_smoothness_loss(alpha, return_map=True)[1].mean(dim=(1, 2, 3))
    assert torch.allclose(reward - ref_reward, info["action_penalty_weight"] * smooth, rtol=1e-4)
    # a rank of a data-parallel job is told the weights of its own rows of the global batch
    rows = [make(num_envs=2, smooth_in_reward=False, shard=(rank, 2), **kwargs).reset(seed=1)[1][
        "action_penalty_weight"] for rank in range(2)]
    assert torch.equal(torch.cat(rows), info["action_penalty_weight"])
    # the one-image env tells it as a float; given as cond, the weight is the one the cond encodes
    single = LowLightEnv(crop=16, **{**RELLIE_LOWLIGHT, **kwargs, "smooth_in_reward": False})
    cond = venv.task.cond[2].numpy()
    low = np.full((3, 16, 16), 0.1, np.float32)
    _, single_info = single.reset(seed=0, options={"low": low, "cond": cond})
    assert single_info["action_penalty_weight"] == pytest.approx(float(info["action_penalty_weight"][2]))


def test_log_encoding_maps_the_log_of_each_weight_range_onto_minus_one_to_one():
    kwargs = dict(num_envs=256, conditioned=True, w_smooth=0.0, exposure_range=(0.3, 0.8), weight_range=(1.0, 1.0),
                  weight_ranges={"w_exposure": (1.0, 100.0), "w_color": (1.0, 100.0)}, w_color=10.0)
    log, linear = make(cond_encoding="log", **kwargs), make(**kwargs)
    # weights varied over 0 < low < high: log; the target, a fixed weight and a zero one stay linear
    assert log.cond_encodings == ("linear", "log", "log", "linear", "linear")
    assert linear.cond_encodings == ("linear",) * 5
    ends = np.array([[0.3, 1.0, 100.0, 1.0, 0.0], [0.8, 100.0, 1.0, 1.0, 0.0]])
    assert torch.allclose(log.task._encode_cond(ends), torch.tensor([[-1.0, -1, 1, 0, 0], [1, 1, -1, 0, 0]]),
                          atol=1e-6)
    log.reset(seed=0)
    linear.reset(seed=0)
    # the same settings drawn; log-uniform samples spread evenly under the log, bunch near -1 linearly
    setting = log.task.transition.decode(log.task.cond)
    assert torch.allclose(setting, torch.from_numpy(decoded_cond(linear)), rtol=1e-5)
    w_exposure_log, w_exposure_linear = log.task.cond[:, 1], linear.task.cond[:, 1]
    assert abs(float(w_exposure_log.mean())) < 0.1 and float(w_exposure_linear.median()) < -0.7
    assert log.task.cond.abs().max() <= 1.0 + 1e-5
    assert torch.allclose(log.task.w[0].flatten(), setting[:, 1])  # the reward uses the decoded weights
    with pytest.raises(ValueError, match="cond_encoding: expected one of"):
        make(cond_encoding="exp")


def test_one_at_a_time_draw_varies_at_most_one_weight_per_image_and_each_of_them():
    ranges = {"w_color": (5.0, 500.0), "w_spatial": (1.0, 100.0), "w_smooth": (10.0, 1000.0)}
    kwargs = dict(num_envs=400, conditioned=True, w_color=5.0, w_spatial=1.0, w_smooth=100.0, weight_range=(1.0, 1.0),
                  weight_ranges=ranges, exposure_range=(0.3, 0.8), cond_encoding="log")
    venv = make(weight_draw="one", **kwargs)
    venv.reset(seed=0)
    setting = venv.task.transition.decode(venv.task.cond).numpy()
    defaults = np.array([10.0, 5.0, 1.0, 100.0])  # w_exposure (the env default 10) has no range: kept
    off = ~np.isclose(setting[:, 1:], defaults, rtol=1e-4)
    assert off.sum(axis=1).max() == 1  # never two weights off their defaults in one image
    assert not off[:, 0].any()
    # each ranged weight varied alone, and all at the defaults, about a quarter of the images each
    shares = [off[:, i].mean() for i in (1, 2, 3)] + [(~off.any(axis=1)).mean()]
    assert all(0.15 < s < 0.35 for s in shares), shares
    for i, (lo, hi) in zip((2, 3, 4), ranges.values()):  # a varied weight is drawn over its whole range
        varied = setting[off[:, i - 1], i]
        assert lo <= varied.min() < lo * 3 and hi / 3 < varied.max() <= hi
    assert np.ptp(setting[:, 0]) > 0.3  # the exposure target is drawn for every image as before
    # the default joint draw varies every ranged weight in almost every image
    joint = make(**kwargs)
    joint.reset(seed=0)
    joint_setting = joint.task.transition.decode(joint.task.cond).numpy()
    assert (~np.isclose(joint_setting[:, 2:], defaults[1:], rtol=1e-4)).all(axis=1).mean() > 0.9
    with pytest.raises(ValueError, match="weight_draw: expected one of"):
        make(weight_draw="each")


def test_max_overshoot_cuts_the_step_that_would_pass_the_target_by_more():
    """Each row's own target: a full-strength step ends at E + max_overshoot, not above; the reward is
    that of the step taken; without the cap the same actions go further."""
    targets = (0.3, 0.6)

    def means_after(max_overshoot, steps=2):
        venv = make(num_envs=2, max_overshoot=max_overshoot, conditioned=True, exposure_range=(0.3, 0.8))
        venv.reset(seed=0, options={"low": torch.full((2, 3, 16, 16), 0.2),
                                    "cond": torch.cat([venv.task.setting_cond(1, exposure_target=t) for t in targets])})
        brightest = torch.full((2, 3, 16, 16), len(venv.task.alpha_table) - 1)
        for _ in range(steps):
            reward_map = venv.step(brightest)[-1]["reward_map"]
        return venv.task.image.mean(dim=(1, 2, 3)), reward_map

    free, _ = means_after(None)
    capped, _ = means_after(0.05)
    assert free[0] > 0.35 + 0.05 and free[1] > 0.4  # the uncapped steps pass 0.35
    assert capped[0] == pytest.approx(0.35, abs=1e-5)  # stopped at 0.3 + 0.05
    assert torch.allclose(capped[1], free[1])  # 0.6 + 0.05 was not reached: untouched
    # the second step of the capped row had no room left: alpha 0, the identity, earns exactly 0
    assert torch.all(means_after(0.05)[1][0] == 0)
    for bad in (-0.1, 1.0, float("inf"), float("nan"), True):  # one rule, rlenhance.ops.check_max_overshoot
        with pytest.raises(ValueError, match="max_overshoot: expected a number with 0 <= max_overshoot < 1"):
            make(max_overshoot=bad)


def test_a_weighted_cap_gives_each_episode_the_cap_of_its_own_exposure_weight():
    """overshoot_weighted: an episode with 4x the env's w_exposure is stopped at half the overshoot; one at the
    env's own weight at max_overshoot, as without weighting; the cap needs a max_overshoot."""
    venv = make(num_envs=2, max_overshoot=0.08, overshoot_weighted=True, conditioned=True, exposure_range=(0.3, 0.8),
                w_exposure=10.0, weight_ranges={"w_exposure": (1.0, 100.0)}, cond_encoding="log")
    others = list(venv.task.weights.values())[1:]  # w_color, w_spatial, w_smooth at their defaults
    values = np.array([[0.3, 10.0, *others], [0.3, 40.0, *others]])
    venv.reset(seed=0, options={"low": torch.full((2, 3, 16, 16), 0.2), "cond": venv.task._encode_cond(values)})
    brightest = torch.full((2, 3, 16, 16), len(venv.task.alpha_table) - 1)
    for _ in range(2):
        venv.step(brightest)
    means = venv.task.image.mean(dim=(1, 2, 3))
    assert means[0] == pytest.approx(0.38, abs=1e-5) and means[1] == pytest.approx(0.34, abs=1e-5)
    with pytest.raises(ValueError, match="overshoot_weighted: weights the cap max_overshoot by w_exposure"):
        make(overshoot_weighted=True)
    with pytest.raises(ValueError, match="lowest w_exposure 0.0"):  # a zero weight would lift the cap entirely
        make(overshoot_weighted=True, max_overshoot=0.08, conditioned=True, w_exposure=10.0,
             weight_ranges={"w_exposure": (0.0, 100.0)})


def test_a_term_no_row_weights_is_not_computed_and_the_rewards_are_the_same(monkeypatch):
    def rewards(venv, compute_all=False):
        venv.reset(seed=0)
        if compute_all:  # every term computed, the unweighted ones times 0
            venv.task.weighted = [True] * 3
            venv.task.state_loss = venv.task._state_loss(venv.task.image)
        actions = torch.full((2, *venv.single_action_space.shape), 9, dtype=torch.long)
        return torch.stack([venv.step(actions)[4]["reward_map"] for _ in range(2)])

    kwargs = dict(conditioned=False, w_exposure=0.0, w_color=5.0, w_spatial=0.0, reward="nonref")
    expected = rewards(make(**kwargs), compute_all=True)
    assert expected.abs().sum() > 0  # the colour term is weighted
    monkeypatch.setattr(losses, "exposure_loss", None)  # calling either unweighted term would raise
    monkeypatch.setattr(losses, "spatial_consistency_loss", None)
    venv = make(**kwargs)
    assert torch.equal(rewards(venv), expected) and venv.task.weighted == [False, True, False]
    with pytest.raises(TypeError):
        rewards(make(**{**kwargs, "w_spatial": 1.0}))
