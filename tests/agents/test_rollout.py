"""agents.rollout: a greedy rollout equals stepping the env by hand, for any image size."""

import numpy as np
import pytest
import torch

from agents.rollout import RolloutPolicy, load_predictor, load_rollout_policy, policy_rollout, rollout_images, task_view
from envs.completion import CompletionVectorEnv
from envs.denoise import DenoiseVectorEnv
from envs.lowlight import LowLightVectorEnv
from rlenhance.checkpoint import SupervisedSpec, save_checkpoint
from rlenhance.errors import CheckpointError, ImageError
from rlenhance.models.pixelrnn import GatedPixelRNN
from rlenhance.models.policy import PixelActorCritic, build_policy_input
from rlenhance.ops.fill import diffusion_fill
from tests.specs import lowlight_spec, rollout_spec


def tiny_data(channels, size=32, n=2, seed=0):
    """A data set small enough to skip decoding the embedded photos: a list of items."""
    g = torch.Generator().manual_seed(seed)
    return [{"high": torch.rand(channels, size, size, generator=g), "name": f"img{i}"} for i in range(n)]


def noisy_pair(shape, seed):
    g = torch.Generator().manual_seed(seed)
    clean = torch.rand(shape, generator=g)
    return clean, clean + 0.1 * torch.randn(shape, generator=g)


def policy_for(venv, **kwargs):
    from agents.a3c import policy_kwargs_from_env

    torch.manual_seed(0)
    policy = PixelActorCritic(**policy_kwargs_from_env(venv, width=8, **kwargs))
    with torch.no_grad():  # a non-trivial policy: the near-uniform init would pick one action everywhere
        policy.policy_head.weight.normal_(0, 2.0)
        policy.policy_head.bias.zero_()
    return policy.eval()


def by_hand(policy, venv, options, steps, pick):
    """reset(options) then ``steps`` steps of ``pick(output)`` actions, carrying the ConvGRU state."""
    obs, _ = venv.reset(seed=0, options=options)
    hidden = None
    with torch.no_grad():
        for _ in range(steps):
            x, cond = build_policy_input(obs)
            out = policy(x, cond if policy.cond_dim else None, hidden)
            obs, *_ = venv.step(pick(out))
            hidden = out.hidden
    return obs["image"]


def argmax(out):
    return out.logits.argmax(dim=2)


def test_denoise_rollout_equals_stepping_the_env_by_hand():
    venv = DenoiseVectorEnv(num_envs=2, crop=16, max_episode_steps=3, data=tiny_data(1))
    policy = policy_for(venv)
    clean, noisy = noisy_pair((2, 1, 16, 16), seed=1)
    options = {"clean": clean, "noisy": noisy}
    expected = by_hand(policy, venv, options, 3, argmax)
    assert not torch.equal(expected, noisy)  # the filters changed something
    got = policy_rollout(policy, venv.task, options)
    assert torch.equal(got, expected)
    assert torch.equal(policy_rollout(policy, venv, options, steps=1),
                       by_hand(policy, venv, options, 1, argmax))


def test_the_actions_of_each_step_come_with_the_images():
    """with_actions: the images are the same and each step's actions are the greedy ones stepped by hand."""
    venv = DenoiseVectorEnv(num_envs=2, crop=16, max_episode_steps=3, data=tiny_data(1))
    policy = policy_for(venv)
    clean, noisy = noisy_pair((2, 1, 16, 16), seed=1)
    options = {"clean": clean, "noisy": noisy}
    taken = []
    expected = by_hand(policy, venv, options, 3, lambda out: taken.append(argmax(out)) or taken[-1])
    image, actions = policy_rollout(policy, venv.task, options, with_actions=True)
    assert torch.equal(image, expected) and actions.dtype == torch.uint8 and actions.shape == (2, 3, 1, 16, 16)
    assert torch.equal(actions.long(), torch.stack(taken, 1))
    assert len(set(actions.flatten().tolist())) > 1  # a policy that varies its actions
    items = [{"clean": clean[i], "noisy": noisy[i]} for i in range(2)]
    for (out, acts), i in zip(rollout_images(policy, venv, items, with_actions=True), range(2)):
        assert torch.equal(acts, actions[i]) and out.shape == (1, 16, 16)


def test_other_image_sizes_and_the_task_is_left_untouched():
    train_env = DenoiseVectorEnv(num_envs=3, crop=16, max_episode_steps=2, data=tiny_data(1))
    obs, _ = train_env.reset(seed=5)
    before = obs["image"].clone()
    policy = policy_for(train_env)
    clean, noisy = noisy_pair((1, 20, 28), seed=2)  # (C, H, W): one image, not the crop size
    got = policy_rollout(policy, train_env.task, {"clean": clean, "noisy": noisy})
    reference_env = DenoiseVectorEnv(num_envs=1, crop=(20, 28), max_episode_steps=2, data=tiny_data(1))
    expected = by_hand(policy, reference_env, {"clean": clean, "noisy": noisy}, 2, argmax)
    assert got.shape == (1, 1, 20, 28) and torch.equal(got, expected)
    task = train_env.task
    assert task.num_envs == 3 and task.image_size == (16, 16) and task.t == 0
    assert torch.equal(task.image, before)
    view = task_view(train_env, 2, (9, 7))
    assert view.single_action_space.shape == (1, 9, 7) and view.single_observation_space["image"].shape == (1, 9, 7)


def test_rollout_images_groups_sizes_and_keeps_the_order():
    venv = DenoiseVectorEnv(num_envs=1, crop=16, max_episode_steps=2, data=tiny_data(1))
    policy = policy_for(venv)
    shapes = [(1, 18, 24), (1, 24, 18), (1, 18, 24), (1, 16, 16), (1, 18, 24)]
    items = []
    for k, shape in enumerate(shapes):
        clean, noisy = noisy_pair(shape, seed=10 + k)
        items.append({"clean": clean, "noisy": noisy})
    outputs = rollout_images(policy, venv, items, batch_size=2)
    assert [tuple(o.shape) for o in outputs] == shapes
    for item, out in zip(items, outputs):
        single = policy_rollout(policy, venv, item)[0]
        torch.testing.assert_close(out, single, rtol=0, atol=1e-5)  # batched convs: float rounding only


def test_completion_with_predictor_and_conv_gru_equals_by_hand():
    def predictor(occluded, mask):  # deterministic stand-in for a supervised model
        return (occluded.mean(dim=1, keepdim=True).expand_as(occluded) * 0.5 + 0.25)

    venv = CompletionVectorEnv(num_envs=2, crop=20, max_episode_steps=3, data=tiny_data(3), predictor=predictor)
    policy = policy_for(venv, conv_gru=True)
    g = torch.Generator().manual_seed(3)
    original = torch.rand(2, 3, 20, 20, generator=g)
    mask = torch.zeros(2, 1, 20, 20)
    mask[:, :, 5:14, 4:12] = 1
    options = {"occluded": original * (1 - mask), "original": original, "mask": mask}
    expected = by_hand(policy, venv, options, 3, argmax)
    got = policy_rollout(policy, venv.task, options)
    assert torch.equal(got, expected)
    assert torch.equal(got * (1 - mask), original * (1 - mask))  # known pixels never change


def test_block_actions_pick_one_action_per_block():
    venv = DenoiseVectorEnv(num_envs=1, crop=15, max_episode_steps=2, data=tiny_data(1))
    policy = policy_for(venv, downscale=2)
    clean, noisy = noisy_pair((1, 1, 15, 15), seed=4)

    obs, _ = venv.reset(seed=0, options={"clean": clean, "noisy": noisy})
    with torch.no_grad():
        for _ in range(2):
            out = policy(obs["image"], full_resolution=False)  # (1, 1, 9, 8, 8): one action per 2x2 block
            actions = out.logits.argmax(dim=2).repeat_interleave(2, -2).repeat_interleave(2, -1)[..., :15, :15]
            obs, *_ = venv.step(actions)
    got = policy_rollout(policy, venv.task, {"clean": clean, "noisy": noisy}, block_actions=True)
    assert torch.equal(got, obs["image"])
    per_pixel = policy_rollout(policy, venv.task, {"clean": clean, "noisy": noisy}, block_actions=False)
    assert torch.equal(per_pixel, by_hand(policy, venv, {"clean": clean, "noisy": noisy}, 2, argmax))
    assert not torch.equal(per_pixel, got)  # the two rules differ on this policy


@pytest.mark.parametrize("bounded_mean", [True, False])
def test_continuous_policies_use_the_mean_a3c_clamped_sac_squashed(bounded_mean):
    venv = LowLightVectorEnv(num_envs=2, crop=16, max_episode_steps=2, action_type="continuous", data=tiny_data(3))
    policy = policy_for(venv, bounded_mean=bounded_mean)
    low = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(6)) * 0.3
    if bounded_mean:
        expected = by_hand(policy, venv, {"low": low}, 2, lambda out: out.mean.clamp(-1, 1))
    else:
        expected = by_hand(policy, venv, {"low": low}, 2, lambda out: torch.tanh(out.mean))
    assert torch.equal(policy_rollout(policy, venv.task, {"low": low}), expected)


def test_sampled_rollouts_follow_the_generator():
    venv = DenoiseVectorEnv(num_envs=1, crop=16, max_episode_steps=2, data=tiny_data(1))
    policy = policy_for(venv)
    clean, noisy = noisy_pair((1, 1, 16, 16), seed=7)
    options = {"clean": clean, "noisy": noisy}
    runs = [policy_rollout(policy, venv, options, greedy=False, generator=torch.Generator().manual_seed(s))
            for s in (0, 0, 1)]
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])
    out = policy(noisy)
    assert policy.predict(out).shape == (1, 1, 16, 16)


def test_policy_mode_is_restored():
    venv = DenoiseVectorEnv(num_envs=1, crop=16, max_episode_steps=1, data=tiny_data(1))
    policy = policy_for(venv).train()
    clean, noisy = noisy_pair((1, 16, 16), seed=8)
    policy_rollout(policy, venv, {"clean": clean, "noisy": noisy})
    assert policy.training


def test_bad_inputs_raise_clear_errors():
    venv = DenoiseVectorEnv(num_envs=1, crop=16, max_episode_steps=2, data=tiny_data(1))
    policy = policy_for(venv)
    clean, noisy = noisy_pair((1, 16, 16), seed=9)
    with pytest.raises(ImageError, match="disagree"):
        policy_rollout(policy, venv, {"clean": clean, "noisy": noisy[:, :8]})
    with pytest.raises(ImageError, match="no image entry"):
        policy_rollout(policy, venv, {"clean": np.float32(1.0)})
    with pytest.raises(ValueError, match="steps"):
        policy_rollout(policy, venv, {"clean": clean, "noisy": noisy}, steps=0)
    with pytest.raises(ValueError, match="reset options"):  # the task names what it accepts
        policy_rollout(policy, venv, {"noisy": noisy})
    with pytest.raises(ValueError, match="channel"):  # an RGB image for a gray task
        policy_rollout(policy, venv, {"clean": torch.rand(3, 16, 16), "noisy": torch.rand(3, 16, 16)})
    with pytest.raises(ValueError, match="batch_size"):
        rollout_images(policy, venv, [{"clean": clean, "noisy": noisy}], batch_size=0)
    with pytest.raises(ImageError, match="one image per item"):
        rollout_images(policy, venv, [{"clean": clean[None], "noisy": noisy[None]}])
    with pytest.raises(TypeError, match="PixelTask"):
        task_view(object(), 1, (4, 4))


def save_supervised(path, net, **spec):
    """Save ``net`` with the SupervisedSpec of ``spec``, as experiments.supervised_train does."""
    return save_checkpoint(path, model=net, arch=net.arch(), extra={"spec": SupervisedSpec(**spec)})


def test_checkpoint_loaders_reject_the_wrong_files(tmp_path):
    venv = DenoiseVectorEnv(num_envs=1, crop=16, max_episode_steps=2, data=tiny_data(1))
    policy = policy_for(venv)
    lowlight = lowlight_spec(alpha_table=[0.0], action_type="discrete", test_steps=1, cond_fields=[],
                             cond_scale=[], setting={"exposure_target": 0.5})
    path = save_checkpoint(tmp_path / "lowlight.pt", model=policy, arch=policy.arch(), extra={"spec": lowlight})
    with pytest.raises(CheckpointError, match="Enhancer"):
        load_rollout_policy(path)
    net = GatedPixelRNN(3, width=4, n_gated=1, n_res=0)
    wrong = save_supervised(tmp_path / "gated.pt", net, task="completion", channels=1, model="gated-pixelrnn",
                            prefill="none")
    with pytest.raises(CheckpointError, match="completion"):
        load_predictor(wrong)
    good = save_supervised(tmp_path / "gated_ok.pt", net, model="gated-pixelrnn", task="completion", channels=3,
                           prefill="none")
    predictor = load_predictor(good)
    occluded, mask = torch.rand(1, 3, 12, 12), torch.ones(1, 1, 12, 12)
    torch.testing.assert_close(predictor(occluded, mask), net.eval()(occluded, mask))
    prefilled = save_supervised(tmp_path / "gated_pf.pt", net, model="gated-pixelrnn", task="completion", channels=3,
                                prefill="diffusion")
    mask = torch.zeros(1, 1, 12, 12)
    mask[..., 3:8, 4:9] = 1.0
    expected = torch.where(mask > 0, net(diffusion_fill(occluded, mask), mask).clamp(0, 1), occluded)
    torch.testing.assert_close(load_predictor(prefilled)(occluded, mask), expected)  # the hole as it was trained
    with pytest.raises(CheckpointError, match="prefill 'telea'"):
        SupervisedSpec(model="gated-pixelrnn", task="completion", channels=3, prefill="telea")


def test_load_rollout_policy_restores_like_policy_rollout(tmp_path):
    venv = DenoiseVectorEnv(num_envs=1, crop=16, max_episode_steps=3, sigma=25.0, data=tiny_data(1))
    policy = policy_for(venv)
    spec = rollout_spec("denoise", {"sigma": 25.0, "gray": True, "crop": 16}, steps=2)
    path = save_checkpoint(tmp_path / "denoise.pt", model=policy, arch=policy.arch(), extra={"spec": spec})
    restorer = load_rollout_policy(path)
    assert isinstance(restorer, RolloutPolicy) and restorer.steps == 2
    clean, noisy = noisy_pair((1, 21, 13), seed=11)
    (out,) = restorer.restore([{"clean": clean, "noisy": noisy}])
    assert torch.equal(out, policy_rollout(policy, venv, {"clean": clean, "noisy": noisy}, steps=2)[0])


def _rollout_checkpoint(tmp_path, task, venv, **policy_kwargs):
    policy = policy_for(venv, **policy_kwargs)
    env_kwargs = {"crop": 16} if task == "completion" else {"sigma": 25.0, "gray": True, "crop": 16}
    spec = rollout_spec(task, env_kwargs, steps=2)
    return policy, save_checkpoint(tmp_path / f"{task}.pt", model=policy, arch=policy.arch(), extra={"spec": spec})


def test_rollout_policy_is_a_restorer_of_hwc_images(tmp_path):
    """restore(image) = the items rollout with the input in the reference slot, as (H, W, C) in [0, 1]."""
    from rlenhance.restore import Restorer

    venv = DenoiseVectorEnv(num_envs=1, crop=16, max_episode_steps=2, data=tiny_data(1))
    policy, path = _rollout_checkpoint(tmp_path, "denoise", venv)
    restorer = load_rollout_policy(path)
    assert isinstance(restorer, Restorer) and not restorer.takes_mask and restorer.channels == 1
    _, noisy = noisy_pair((1, 21, 13), seed=12)
    noisy[0, 0, 0] = 1.3  # unclipped noise is a denoiser's input
    image = noisy.permute(1, 2, 0).numpy()
    out = restorer.restore(image)
    (expected,) = restorer.restore_items([{"clean": noisy, "noisy": noisy}])
    assert out.dtype == np.float32 and out.shape == (21, 13, 1)
    np.testing.assert_array_equal(out, expected.clamp(0, 1).permute(1, 2, 0).numpy())
    np.testing.assert_array_equal(restorer.restore(image[..., 0]), out)  # (H, W) accepted
    rgb = np.random.default_rng(0).uniform(0, 1, (9, 11, 3)).astype(np.float32)
    per_channel = restorer.restore(rgb)  # a gray policy restores R, G and B separately
    assert per_channel.shape == (9, 11, 3)
    for c in range(3):
        np.testing.assert_array_equal(per_channel[..., c:c + 1], restorer.restore(rgb[..., c:c + 1]))
    with pytest.raises(ImageError, match="takes no mask"):
        restorer.restore(image, mask=np.zeros((21, 13), bool))
    with pytest.raises(ImageError, match="image"):
        restorer.restore(np.zeros((8, 8, 4), np.float32))


def test_completion_rollout_policy_needs_the_mask(tmp_path):
    venv = CompletionVectorEnv(num_envs=1, crop=16, max_episode_steps=2, data=tiny_data(3))
    policy, path = _rollout_checkpoint(tmp_path, "completion", venv)
    restorer = load_rollout_policy(path)
    assert restorer.takes_mask and restorer.channels == 3
    g = torch.Generator().manual_seed(8)
    hole = torch.zeros(1, 18, 15)
    hole[:, 4:11, 3:9] = 1
    occluded = torch.rand(3, 18, 15, generator=g) * (1 - hole)
    out = restorer.restore(occluded.permute(1, 2, 0).numpy(), mask=hole[0].numpy() > 0.5)
    expected = policy_rollout(policy, venv, {"occluded": occluded, "original": occluded, "mask": hole}, steps=2)[0]
    np.testing.assert_array_equal(out, expected.clamp(0, 1).permute(1, 2, 0).numpy())
    np.testing.assert_array_equal(
        restorer.restore(occluded.permute(1, 2, 0).numpy(), mask=hole[0].numpy()[..., None]), out)
    with pytest.raises(ImageError, match="mask: required"):
        restorer.restore(occluded.permute(1, 2, 0).numpy())
    with pytest.raises(ImageError, match="does not match the image"):
        restorer.restore(occluded.permute(1, 2, 0).numpy(), mask=np.zeros((18, 14), bool))
