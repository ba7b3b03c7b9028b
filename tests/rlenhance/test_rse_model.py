"""rlenhance.models.rse: latent clustering and neighbour search, the blend the agent controls, the
rounds, and the checkpoint round trip through RSEDenoiserSpec / load_rse."""

from __future__ import annotations

import pytest
import torch

from rlenhance.checkpoint import RSEDenoiserSpec, SupervisedSpec, load_checkpoint, save_checkpoint
from rlenhance.errors import CheckpointError, ImageError
from rlenhance.models.rse import LatentBank, RSEBlend, RSEDenoiser, RSERound, rse_blend
from rlenhance.models.vae import d4_transform
from rlenhance.rse import load_rse

TINY = dict(channels=3, patch=8, stride=4, latent_dim=4, hidden=16, bank_size=64, clusters=4, neighbours=3, width=8,
            max_rounds=2)


def fitted_bank(size=200, clusters=8, dim=4, probe=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    centres = 4 * torch.randn(clusters, dim, generator=gen)
    latents = centres[torch.arange(size) % clusters] + 0.3 * torch.randn(size, dim, generator=gen)
    bank = LatentBank(size, clusters, dim, probe=probe)
    bank.fit(latents, seed=seed)
    return bank


def tiny_model(**overrides):
    torch.manual_seed(0)
    model = RSEDenoiser(**{**TINY, **overrides}).eval()
    for stage in model.rounds:
        stage.bank.fit(torch.randn(stage.bank.size, stage.vae.latent_dim))
    return model


def test_kmeans_groups_separated_latents_and_every_latent_gets_its_nearest_centre():
    bank = fitted_bank()
    sizes = bank.cluster_sizes()
    assert int(sizes.sum()) == 200 and int((sizes > 0).sum()) == 8
    assert torch.equal(bank.assignment, torch.cdist(bank.latents, bank.centres).argmin(dim=1))


def test_neighbour_search_equals_brute_force_when_every_cluster_is_probed():
    bank = fitted_bank(probe=8)
    queries = torch.randn(50, 4, generator=torch.Generator().manual_seed(1)) * 4
    found = bank.neighbours(queries, 5)
    exact = torch.cdist(queries, bank.latents).topk(5, dim=1, largest=False).indices
    assert torch.equal(found, exact)


def test_neighbours_come_from_the_querys_clusters():
    bank = fitted_bank(probe=1)
    queries = bank.latents[:20] + 0.01
    found = bank.neighbours(queries, 4)
    cells = bank.nearest_cluster(queries)
    assert torch.equal(bank.assignment[found], cells[:, None].expand(-1, 4))
    assert torch.equal(found[:, 0], torch.arange(20))  # each latent is its own nearest neighbour


def test_blend_actions_keep_replace_and_mix():
    image = torch.rand(2, 3, 6, 5)
    vae, near = torch.rand(2, 3, 6, 5), torch.rand(2, 3, 6, 5)
    candidates = torch.cat([vae, near], dim=1)

    def actions(strength, mix):
        return torch.stack([torch.full((2, 6, 5), strength), torch.full((2, 6, 5), mix)], dim=1)

    assert torch.equal(rse_blend(image, candidates, actions(-1.0, 0.3)), image)
    assert torch.allclose(rse_blend(image, candidates, actions(1.0, -1.0)), vae)
    assert torch.allclose(rse_blend(image, candidates, actions(1.0, 1.0)), near)
    assert torch.allclose(rse_blend(image, candidates, actions(0.0, 0.0)), 0.5 * image + 0.25 * (vae + near))
    a = torch.rand(2, 2, 6, 5) * 2 - 1
    assert torch.equal(RSEBlend()(image, candidates, a), rse_blend(image, candidates, a))
    with pytest.raises(ImageError, match="candidates"):
        rse_blend(image, vae, a)


def test_a_third_candidate_moves_the_target_toward_the_prediction():
    image, vae, near, pred = (torch.rand(2, 3, 6, 5) for _ in range(4))
    candidates = torch.cat([vae, near, pred], dim=1)

    def actions(*values):
        return torch.stack([torch.full((2, 6, 5), v) for v in values], dim=1)

    assert torch.equal(rse_blend(image, candidates, actions(-1.0, 0.3, 0.9)), image)
    assert torch.allclose(rse_blend(image, candidates, actions(1.0, 1.0, -1.0)), near)
    assert torch.allclose(rse_blend(image, candidates, actions(1.0, 0.2, 1.0)), pred)
    assert torch.allclose(rse_blend(image, candidates, actions(1.0, -1.0, 0.0)), 0.5 * (vae + pred))
    with pytest.raises(ImageError, match="with a predictor, 3"):
        rse_blend(image, candidates, actions(1.0, 1.0))


def test_a_predicted_round_needs_its_predictor_and_the_spec_must_say_so(tmp_path):
    model = tiny_model(predicted=True)
    stage = model.rounds[0]
    x = torch.rand(1, 3, 16, 16)
    with pytest.raises(RuntimeError, match="load_rse"):
        stage.candidates(x)
    model.attach_predictor(lambda images: images.flip(-1))
    candidates = stage.candidates(x)
    assert candidates.shape == (1, 9, 16, 16) and torch.equal(candidates[:, 6:], x.flip(-1))
    actions = stage.act(x, candidates)
    assert actions.shape == (1, 3, 16, 16)
    strength, _, predict = ((actions + 1) / 2).unbind(dim=1)  # the untrained round starts at the prediction
    assert strength.min() > 0.99 and predict.min() > 0.99
    torch.testing.assert_close(stage(x), x.flip(-1), atol=0.02, rtol=0)
    with pytest.raises(ValueError, match="without a predictor"):
        tiny_model().attach_predictor(lambda images: images)
    unrecorded = save_checkpoint(tmp_path / "unrecorded.pt", model=model, arch=model.arch(),
                                 extra={"spec": RSEDenoiserSpec(sigma=25.0, channels=3, rounds=1)})
    with pytest.raises(CheckpointError, match="predictor is None and its rounds were built with"):
        load_rse(unrecorded)
    with pytest.raises(CheckpointError, match="relative path"):
        RSEDenoiserSpec(sigma=25.0, channels=3, rounds=1, predictor="weights/ffdnet.pt")
    assert "predicted" not in tiny_model().arch()["kwargs"]  # files before the predictor keep their arch


def test_round_candidates_shapes_and_flat_image_reconstruction():
    model = tiny_model()
    stage = model.rounds[0]
    x = torch.rand(2, 3, 20, 24)
    candidates = stage.candidates(x)
    assert candidates.shape == (2, 6, 20, 24) and torch.isfinite(candidates).all()
    flat = torch.full((1, 3, 16, 16), 0.3)  # zero structure: the decoder's output is all that is added to the DC
    out = stage.candidates(flat)
    assert out.shape == (1, 6, 16, 16)
    assert model(x, rounds=2).shape == x.shape
    with pytest.raises(ValueError, match="rounds"):
        model(x, rounds=3)


def test_candidates_of_a_rotated_image_are_the_rotated_candidates_when_the_grid_fits():
    """Square image whose patch grid is symmetric: rotating the image rotates its candidates."""
    model = tiny_model()
    stage = model.rounds[0]
    x = torch.rand(1, 3, 16, 16)  # grid: pad 4 on each side, patches at -4, 0, ..., 12: symmetric
    for g in range(8):
        assert torch.allclose(stage.candidates(d4_transform(x, g)), d4_transform(stage.candidates(x), g), atol=1e-5)


def test_checkpoint_round_trip_through_the_spec(tmp_path):
    model = tiny_model()
    path = save_checkpoint(tmp_path / "rse.pt", model=model, arch=model.arch(),
                           extra={"spec": RSEDenoiserSpec(sigma=25.0, channels=3, rounds=2)})
    loaded, spec = load_rse(path)
    assert spec == RSEDenoiserSpec(sigma=25.0, channels=3, rounds=2)
    x = torch.rand(1, 3, 20, 20)
    assert torch.equal(loaded(x, rounds=spec.rounds), model(x, rounds=2))


def test_spec_and_loader_refusals(tmp_path):
    with pytest.raises(CheckpointError, match="rounds"):
        RSEDenoiserSpec(sigma=25.0, channels=3, rounds=0)
    with pytest.raises(CheckpointError, match="channels"):
        RSEDenoiserSpec(sigma=25.0, channels=2, rounds=1)
    model = tiny_model()
    too_many = save_checkpoint(tmp_path / "more.pt", model=model, arch=model.arch(),
                               extra={"spec": RSEDenoiserSpec(sigma=25.0, channels=3, rounds=3)})
    with pytest.raises(CheckpointError, match="round"):
        load_rse(too_many)
    other = save_checkpoint(tmp_path / "other.pt", model=model, arch=model.arch(),
                            extra={"spec": SupervisedSpec(model="mrpnet", task="denoise", channels=3, prefill="none")})
    with pytest.raises(CheckpointError, match="RSE-RL denoiser"):
        load_rse(other)
    assert isinstance(load_checkpoint(too_many)["extra"]["spec"], RSEDenoiserSpec)


def test_bad_configuration_raises():
    with pytest.raises(ValueError, match="stride"):
        RSERound(patch=8, stride=9)
    with pytest.raises(ValueError, match="clusters"):
        LatentBank(4, 8, 2)
    with pytest.raises(ValueError, match="max_rounds"):
        RSEDenoiser(**{**TINY, "max_rounds": 0})
    with pytest.raises(ImageError, match=r"channel\(s\)"):
        tiny_model().rounds[0].candidates(torch.rand(1, 1, 16, 16))
