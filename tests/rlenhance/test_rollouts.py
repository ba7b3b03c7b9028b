"""The one inference path of the denoising and completion policies (PolicyDenoiser, PolicyCompleter: users'
restore and the trainers' rollout_images alike) equals stepping the policy's env by hand, for any image size."""

import numpy as np
import pytest
import torch

from envs.checkpoints import rollout_policy_spec
from envs.completion import CompletionVectorEnv
from envs.denoise import DenoiseVectorEnv
from rlenhance.checkpoint import SupervisedSpec, save_checkpoint
from rlenhance.completion import PolicyCompleter
from rlenhance.denoisers import PolicyDenoiser
from rlenhance.errors import CheckpointError, ImageError
from rlenhance.models.pixelrnn import GatedPixelRNN
from rlenhance.models.policy import PixelActorCritic
from rlenhance.ops.fill import diffusion_fill
from rlenhance.predictors import CompletionPredictor
from tests.rollouts import env_restore, stepped
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


def denoiser_for(policy, steps, *, block_actions=False, predictor=None, **env):
    """The library's restorer of a policy in memory, as a trainer evaluates it."""
    spec = rollout_policy_spec("denoise", {"sigma": 25.0, "gray": True, "crop": 16, "max_episode_steps": steps, **env},
                               block_actions=block_actions, predictor=None if predictor is None else "/p.pt")
    return PolicyDenoiser.from_policy(policy, spec, predictor=predictor)


def test_denoise_rollouts_equal_stepping_the_env_by_hand_with_their_actions():
    venv = DenoiseVectorEnv(num_envs=2, crop=16, max_episode_steps=3, data=tiny_data(1))
    policy = policy_for(venv)
    clean, noisy = noisy_pair((2, 1, 16, 16), seed=1)
    expected, taken = stepped(policy, venv, {"clean": clean, "noisy": noisy}, steps=3)
    assert not torch.equal(expected, noisy)  # the filters changed something
    denoiser = denoiser_for(policy, 3)
    actions = []
    assert torch.equal(denoiser.rollout_batch(noisy, actions=actions), expected.clamp(0, 1))
    assert torch.equal(torch.stack(actions, 1), taken) and len(set(taken.flatten().tolist())) > 1
    results = denoiser.rollout_images([(noisy[i],) for i in range(2)])
    for i, (out, acts) in enumerate(results):
        assert torch.equal(out, expected[i].clamp(0, 1)) and acts.dtype == torch.uint8
        assert torch.equal(acts.long(), taken[i])


def test_rollout_images_groups_sizes_keeps_the_order_and_the_policys_mode():
    venv = DenoiseVectorEnv(num_envs=1, crop=16, max_episode_steps=2, data=tiny_data(1))
    policy = policy_for(venv).train()
    denoiser = denoiser_for(policy, 2)
    shapes = [(1, 18, 24), (1, 24, 18), (1, 18, 24), (1, 16, 16), (1, 18, 24)]
    items = [(noisy_pair(shape, seed=10 + k)[1],) for k, shape in enumerate(shapes)]
    outputs = denoiser.rollout_images(items, batch_size=2)
    assert policy.training  # evaluated in eval mode, its mode restored
    assert [tuple(o.shape) for o, _ in outputs] == shapes and [a.shape[:2] for _, a in outputs] == [(2, 1)] * 5
    for (noisy,), (out, _) in zip(items, outputs):
        single = DenoiseVectorEnv(num_envs=1, crop=tuple(noisy.shape[-2:]), max_episode_steps=2, data=tiny_data(1))
        expected, _ = stepped(policy, single, {"clean": noisy, "noisy": noisy}, steps=2)
        torch.testing.assert_close(out, expected[0].clamp(0, 1), rtol=0, atol=1e-5)  # batched convs: rounding only
    with pytest.raises(ValueError, match="batch_size"):
        denoiser.rollout_images(items, batch_size=0)
    with pytest.raises(ImageError, match=r"items\[0\]: expected tensors \(C, H, W\)"):
        denoiser.rollout_images([(items[0][0][None],)])


def test_completion_with_predictor_and_conv_gru_equals_by_hand():
    class Predictor:  # a deterministic stand-in for a supervised model, as the env and the restorer take it
        overlap, stride = 0, 1

        def __call__(self, occluded, mask):
            return occluded.mean(dim=1, keepdim=True).expand_as(occluded) * 0.5 + 0.25

    venv = CompletionVectorEnv(num_envs=2, crop=20, max_episode_steps=3, data=tiny_data(3), predictor=Predictor())
    policy = policy_for(venv, conv_gru=True)
    g = torch.Generator().manual_seed(3)
    original = torch.rand(2, 3, 20, 20, generator=g)
    mask = torch.zeros(2, 1, 20, 20)
    mask[:, :, 5:14, 4:12] = 1
    options = {"occluded": original * (1 - mask), "original": original, "mask": mask}
    expected, _ = stepped(policy, venv, options, steps=3)
    spec = rollout_policy_spec("completion", {"crop": 20, "max_episode_steps": 3}, block_actions=False,
                               predictor="/p.pt")
    completer = PolicyCompleter.from_policy(policy, spec, predictor=Predictor())
    got = completer.rollout_batch(options["occluded"], mask)
    assert torch.equal(got, expected)
    assert torch.equal(got * (1 - mask), original * (1 - mask))  # known pixels never change
    with pytest.raises(CheckpointError, match="a policy trained with a predictor, given none"):
        PolicyCompleter.from_policy(policy, spec)


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
    blocks = denoiser_for(policy, 2, block_actions=True).rollout_batch(noisy)
    assert torch.equal(blocks, obs["image"].clamp(0, 1))
    per_pixel = denoiser_for(policy, 2).rollout_batch(noisy)
    assert torch.equal(per_pixel, stepped(policy, venv, {"clean": clean, "noisy": noisy}, steps=2)[0].clamp(0, 1))
    assert not torch.equal(per_pixel, blocks)  # the two rules differ on this policy


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
        PolicyDenoiser(path, device="cpu")
    net = GatedPixelRNN(3, width=4, n_gated=1, n_res=0)
    wrong = save_supervised(tmp_path / "gated.pt", net, task="completion", channels=1, model="gated-pixelrnn",
                            prefill="none")
    with pytest.raises(CheckpointError, match="completion"):
        CompletionPredictor(wrong, device="cpu")
    good = save_supervised(tmp_path / "gated_ok.pt", net, model="gated-pixelrnn", task="completion", channels=3,
                           prefill="none")
    predictor = CompletionPredictor(good, device="cpu")
    occluded, mask = torch.rand(1, 3, 12, 12), torch.ones(1, 1, 12, 12)
    torch.testing.assert_close(predictor(occluded, mask), net.eval()(occluded, mask))
    prefilled = save_supervised(tmp_path / "gated_pf.pt", net, model="gated-pixelrnn", task="completion", channels=3,
                                prefill="diffusion")
    mask = torch.zeros(1, 1, 12, 12)
    mask[..., 3:8, 4:9] = 1.0
    expected = torch.where(mask > 0, net(diffusion_fill(occluded, mask), mask).clamp(0, 1), occluded)
    torch.testing.assert_close(CompletionPredictor(prefilled, device="cpu")(occluded, mask), expected)  # as trained
    with pytest.raises(CheckpointError, match="prefill 'telea'"):
        SupervisedSpec(model="gated-pixelrnn", task="completion", channels=3, prefill="telea")


def _rollout_checkpoint(tmp_path, task, venv, **policy_kwargs):
    policy = policy_for(venv, **policy_kwargs)
    env_kwargs = {"crop": 16} if task == "completion" else {"sigma": 25.0, "gray": True, "crop": 16}
    spec = rollout_spec(task, env_kwargs, steps=2)
    return policy, save_checkpoint(tmp_path / f"{task}.pt", model=policy, arch=policy.arch(), extra={"spec": spec})


def test_a_denoising_checkpoint_restores_hwc_images_as_its_env(tmp_path):
    """restore(image) = the env's rollout with the input in the reference slot, as (H, W, C) in [0, 1]; a
    gray policy restores R, G and B separately."""
    venv = DenoiseVectorEnv(num_envs=1, crop=16, max_episode_steps=2, data=tiny_data(1))
    _, path = _rollout_checkpoint(tmp_path, "denoise", venv)
    restorer = PolicyDenoiser(path, device="cpu")
    assert not restorer.takes_mask and restorer.channels == 1
    _, noisy = noisy_pair((1, 21, 13), seed=12)
    noisy[0, 0, 0] = 1.3  # unclipped noise is a denoiser's input
    image = noisy.permute(1, 2, 0).numpy()
    out = restorer.restore(image)
    assert out.dtype == np.float32 and out.shape == (21, 13, 1)
    np.testing.assert_allclose(out, env_restore(path, image), atol=1e-6)
    rgb = np.random.default_rng(0).uniform(0, 1, (9, 11, 3)).astype(np.float32)
    np.testing.assert_allclose(restorer.restore(rgb, per_channel=True), env_restore(path, rgb), atol=1e-6)


def test_a_completion_checkpoint_restores_as_its_env_and_needs_the_mask(tmp_path):
    venv = CompletionVectorEnv(num_envs=1, crop=16, max_episode_steps=2, data=tiny_data(3))
    _, path = _rollout_checkpoint(tmp_path, "completion", venv)
    restorer = PolicyCompleter(path, device="cpu")
    assert restorer.takes_mask and restorer.channels == 3
    g = torch.Generator().manual_seed(8)
    hole = torch.zeros(18, 15, dtype=torch.bool)
    hole[4:11, 3:9] = True
    image = (torch.rand(3, 18, 15, generator=g) * ~hole).permute(1, 2, 0).numpy()
    out = restorer.restore(image, mask=hole.numpy())
    np.testing.assert_allclose(out, env_restore(path, image, hole.numpy()), atol=1e-6)
    np.testing.assert_array_equal(restorer.restore(image, mask=hole.numpy()[..., None]), out)
    with pytest.raises(ImageError, match="mask: required"):
        restorer.restore(image)
    with pytest.raises(ImageError, match="does not match the image"):
        restorer.restore(image, mask=np.zeros((18, 14), bool))
