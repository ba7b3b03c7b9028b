"""A supervised denoiser as a denoising policy's predictor: DenoisePredictor checks the checkpoint and the
planes and gives an FFDNet its noise level, and a policy trained with one restores the same in the library
(PolicyDenoiser, tiled) as through its env stepped by hand."""

from pathlib import Path

import numpy as np
import pytest
import torch

from envs.denoise import DenoiseVectorEnv
from rlenhance import load_denoiser
from rlenhance.checkpoint import RSEDenoiserSpec, SupervisedSpec, save_checkpoint
from rlenhance.denoisers import DenoisePredictor, NoiseLevelDenoiser, PolicyDenoiser
from rlenhance.errors import CheckpointError, ImageError
from rlenhance.models.ffdnet import FFDNet
from rlenhance.models.policy import PixelActorCritic
from rlenhance.models.rse import RSEDenoiser
from rlenhance.predictors import CompletionPredictor
from rlenhance.restore import SupervisedRestorer
from tests.rollouts import env_restore
from tests.specs import rollout_spec

WEIGHTS = Path(__file__).resolve().parents[2] / "rlenhance" / "weights"
MRPNET = WEIGHTS / "mrpnet_denoise.pt"  # gray, shipped
COMPLETION = WEIGHTS / "gated_pixelrnn_completion.pt"


def noisy_batch(channels=1, height=20, width=26, seed=0):
    """A smooth picture (a gradient) with noise of sigma 25, float (1, C, H, W)."""
    g = torch.Generator().manual_seed(seed)
    clean = 0.2 + 0.6 * torch.linspace(0, 1, width).expand(1, channels, height, width)
    return clean + 25 / 255 * torch.randn(clean.shape, generator=g)


def ffdnet_checkpoint(path, sigmas=(0.0, 50.0)):
    torch.manual_seed(0)
    net = FFDNet(1, width=8, depth=3)
    spec = SupervisedSpec(model="ffdnet", task="denoise", channels=1, prefill="none", noise="gaussian",
                          sigma=sigmas[-1], sigmas=sigmas)
    return save_checkpoint(path, model=net, arch=net.arch(), extra={"spec": spec})


def predictor_policy(path, predictor, *, n_actions=10, sigma=25.0, steps=3):
    """A random policy over the nine filters and the predictor, saved as denoise_train --predictor does."""
    torch.manual_seed(1)
    policy = PixelActorCritic(in_channels=1, out_channels=1, n_actions=n_actions, width=8)
    with torch.no_grad():  # a non-trivial policy: the near-uniform init would pick one action everywhere
        policy.policy_head.weight.normal_(0, 2.0)
    spec = rollout_spec("denoise", {"sigma": sigma, "gray": True, "crop": 16}, steps=steps, predictor=str(predictor))
    return save_checkpoint(path, model=policy, arch=policy.arch(), extra={"spec": spec, "algorithm": "a3c"})


def test_a_supervised_denoiser_predicts_through_its_restorer():
    predictor = DenoisePredictor(MRPNET, channels=1, device="cpu")
    assert predictor.channels == 1
    noisy = noisy_batch()
    expected = SupervisedRestorer(MRPNET, device="cpu", task="denoise").restore_tensor(noisy)
    torch.testing.assert_close(predictor(noisy), expected)
    with pytest.raises(ImageError, match=r"noisy: expected a float tensor \(B, 1, H, W\)"):
        predictor(noisy.expand(-1, 3, -1, -1))


def test_wrong_predictor_files_and_arguments_are_named(tmp_path):
    with pytest.raises(CheckpointError, match="trained for task 'completion'.*supervised_train --task denoise"):
        DenoisePredictor(COMPLETION, channels=3)
    with pytest.raises(CheckpointError, match=r"a gray \(1-plane\) denoiser; the model denoises RGB"):
        DenoisePredictor(MRPNET, channels=3)
    policy = predictor_policy(tmp_path / "policy.pt", MRPNET)
    with pytest.raises(CheckpointError, match="denoising / completion policy checkpoint"):
        DenoisePredictor(policy, channels=1)
    with pytest.raises(CheckpointError, match="missing.pt"):
        DenoisePredictor(tmp_path / "missing.pt", channels=1)
    with pytest.raises(ValueError, match="channels: expected 1 .gray. or 3"):
        DenoisePredictor(MRPNET, channels=2)
    with pytest.raises(CheckpointError, match="needs a checkpoint of task .completion."):  # a completion policy's
        CompletionPredictor(MRPNET)


def test_an_ffdnet_predictor_reads_the_policys_noise_level_or_estimates_it(tmp_path):
    ffdnet = ffdnet_checkpoint(tmp_path / "ffdnet.pt")
    noisy = noisy_batch(seed=3)
    one_level = DenoisePredictor.for_policy(rollout_spec("denoise", {"sigma": 25.0}, steps=1, predictor=str(ffdnet)),
                                            device="cpu")
    assert one_level.sigma == 25.0
    torch.testing.assert_close(one_level(noisy), NoiseLevelDenoiser(ffdnet, sigma=25.0, device="cpu")
                               .restore_tensor(noisy))
    blind = DenoisePredictor.for_policy(rollout_spec("denoise", {"sigma": [15.0, 40.0]}, steps=1,
                                                     predictor=str(ffdnet)), device="cpu")
    assert blind.sigma is None
    torch.testing.assert_close(blind(noisy), NoiseLevelDenoiser(ffdnet, device="cpu").restore_tensor(noisy))
    assert not torch.allclose(blind(noisy), NoiseLevelDenoiser(ffdnet, sigma=50.0, device="cpu").restore_tensor(noisy))
    with pytest.raises(ValueError, match=r"sigma: expected a noise level in \[0, 50\]"):
        DenoisePredictor(ffdnet, channels=1, sigma=75.0)


def test_a_predictor_policy_restores_alike_through_the_env_and_in_the_library(tmp_path):
    path = predictor_policy(tmp_path / "policy.pt", MRPNET)
    library = load_denoiser("a3c", checkpoint=path, device="cpu", tile=16)  # tiled: 16-px cores, windows of 2 + 2
    assert isinstance(library, PolicyDenoiser) and library.predictor is not None
    assert len(library.action_names) == 10 and library.action_names[-1] == "predict"
    image = noisy_batch(height=37, width=45, seed=5)[0].permute(1, 2, 0).numpy()
    out = library.restore(image)
    np.testing.assert_allclose(out, env_restore(path, image), atol=1e-5, rtol=0)
    # the predictor is taken: not the output of the nine filters alone, nor the prediction alone
    prediction = library.predictor(torch.from_numpy(image).permute(2, 0, 1)[None])[0, 0].numpy()
    taken = np.isclose(out[..., 0], prediction, atol=1e-7)
    assert 0 < taken.mean() < 1
    assert DenoiseVectorEnv(num_envs=1, crop=16, data=[{"high": torch.rand(1, 16, 16), "name": "x"}],
                            predictor=library.predictor).task.n_actions == 10


def test_a_policy_without_the_predictors_action_is_refused(tmp_path):
    path = predictor_policy(tmp_path / "nine.pt", MRPNET, n_actions=9)
    with pytest.raises(CheckpointError, match=r"filters and the predictor \(10 actions\)"):
        PolicyDenoiser(path, device="cpu")


def test_a_policys_self_ensemble_is_its_predictors_through_the_env_and_in_the_library(tmp_path):
    """ensemble=n reaches the policy's predictor (the policy itself runs once), as the env given that
    predictor runs it; refused for a policy or an rse model without a predictor."""
    ffdnet = ffdnet_checkpoint(tmp_path / "ffdnet.pt")
    path = predictor_policy(tmp_path / "policy.pt", ffdnet)
    library = load_denoiser("a3c", checkpoint=path, device="cpu", ensemble=4)
    noisy = noisy_batch(height=20, width=26, seed=2)
    expected = NoiseLevelDenoiser(ffdnet, sigma=25.0, device="cpu", ensemble=4).restore_tensor(noisy)
    torch.testing.assert_close(library.predictor(noisy), expected)
    assert not torch.allclose(load_denoiser("a3c", checkpoint=path, device="cpu").predictor(noisy), expected)
    image = noisy[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(library.restore(image), env_restore(path, image, predictor=library.predictor),
                               atol=1e-5, rtol=0)
    torch.manual_seed(1)
    nine = PixelActorCritic(in_channels=1, out_channels=1, n_actions=9, width=8)
    spec = rollout_spec("denoise", {"sigma": 25.0, "gray": True}, steps=2)
    alone = save_checkpoint(tmp_path / "nine.pt", model=nine, arch=nine.arch(), extra={"spec": spec})
    with pytest.raises(ValueError, match="ensemble: 2 is the self-ensemble of a policy's predictor, and this "
                                         "policy has none"):
        load_denoiser("a3c", checkpoint=alone, ensemble=2)
    torch.manual_seed(0)
    pure = RSEDenoiser(channels=1, patch=8, stride=4, latent_dim=4, hidden=8, bank_size=16, clusters=2, neighbours=2,
                       width=4, max_rounds=1)
    pure_path = save_checkpoint(tmp_path / "rse.pt", model=pure, arch=pure.arch(),
                                extra={"spec": RSEDenoiserSpec(sigma=25.0, channels=1, rounds=1)})
    with pytest.raises(ValueError, match="self-ensemble of an RSE-RL model's predictor, and .* has none"):
        load_denoiser("rse", checkpoint=pure_path, ensemble=2)  # an RSE-RL model without a predictor
