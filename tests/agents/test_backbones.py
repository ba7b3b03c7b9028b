"""Policy backbones bootstrapped from supervised models (rlenhance.models.policy / .backbones)."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import envs
from agents.a3c import A3C, A3CConfig, policy_kwargs_from_env
from agents.sac import SAC, SACConfig
from rlenhance.checkpoint import SupervisedSpec, build_model, load_checkpoint, save_checkpoint
from rlenhance.data import BuiltinImages, add_gaussian_noise, sample_batch
from rlenhance.errors import CheckpointError, ImageError
from rlenhance.models.backbones import backbone_parameters, load_backbone, set_backbone_trainable
from rlenhance.models.mrpnet import CombinedModel, Generator, MRPNet
from rlenhance.models.pixelrnn import GatedPixelRNN, PixelRNN
from rlenhance.models.policy import ConvTrunk, PixelActorCritic, SupervisedTrunk

SMALL = dict(width=8, dilations=(1, 2), branch_dilations=(2,))
TINY_GATED = dict(n_gated=1, n_res=1)
TINY_RNN = dict(levels=2)

# (policy kwargs, expected supervised class) for each backbone and input layout
LOWLIGHT = dict(in_channels=6, out_channels=3, n_actions=27, cond_dim=5, downscale=2, backbone="mrpnet",
                backbone_width=8)
DENOISE = dict(in_channels=1, out_channels=1, n_actions=9, backbone="mrpnet", backbone_width=8)
COMPLETION = dict(in_channels=4, out_channels=1, n_actions=8, backbone="pixelrnn", backbone_width=8,
                  backbone_kwargs=TINY_GATED)
DENOISE_RNN = dict(in_channels=1, out_channels=1, n_actions=9, conv_gru=True, backbone="pixelrnn",
                   backbone_width=4, backbone_kwargs=TINY_RNN)


def make(kwargs, **more):
    return PixelActorCritic(**(SMALL | kwargs | more))


def inputs(net, b=2, h=13, w=11, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, net.in_channels, h, w, generator=g)
    if net._kwargs.get("backbone_mask"):
        x[:, -1] = (x[:, -1] > 0.7).float()  # a binary mask plane
    cond = torch.rand(b, net.cond_dim, generator=g) if net.cond_dim else None
    return x, cond


def save_supervised(model, path):
    """Save the way experiments.supervised_train does (arch + weights + its SupervisedSpec)."""
    gated = isinstance(model, GatedPixelRNN)  # reads a hole mask: trained for completion only
    spec = SupervisedSpec(model="gated-pixelrnn" if gated else "mrpnet", task="completion" if gated else "denoise",
                          channels=model.in_channels, prefill="none")
    return save_checkpoint(path, model=model, arch=model.arch(), extra={"epoch": 1, "spec": spec})


def clone_state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


# --- architecture ---------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs,cls", [
    ({"in_channels": 6, "out_channels": 3, "n_actions": 27, "cond_dim": 5}, ConvTrunk),
    (LOWLIGHT, MRPNet), (DENOISE, MRPNet), (COMPLETION, GatedPixelRNN), (DENOISE_RNN, PixelRNN),
])
def test_arch_round_trip_rebuilds_each_backbone(kwargs, cls, tmp_path):
    torch.manual_seed(0)
    net = make(kwargs).eval()
    assert isinstance(net.backbone_module, cls)
    arch = json.loads(json.dumps(net.arch()))
    again = build_model({"arch": arch, "state_dict": net.state_dict()}, {"PixelActorCritic": PixelActorCritic}).eval()
    assert again.arch() == net.arch()
    x, cond = inputs(net)
    torch.testing.assert_close(again(x, cond).logits, net(x, cond).logits)
    # and through a checkpoint file, the way Enhancer rebuilds a policy
    save_checkpoint(tmp_path / "p.pt", model=net, arch=net.arch())
    loaded = build_model(load_checkpoint(tmp_path / "p.pt", expected_arch=net.arch()),
                         {"PixelActorCritic": PixelActorCritic}).eval()
    torch.testing.assert_close(loaded(x, cond).value, net(x, cond).value)


def test_arch_records_resolved_backbone_arguments():
    kw = make(LOWLIGHT).arch()["kwargs"]
    assert {k: kw[k] for k in kw if k.startswith("backbone")} == {
        "backbone": "mrpnet", "backbone_channels": 3, "backbone_width": 8, "backbone_mask": False,
        "backbone_kwargs": {}}
    # defaults: the supervised class's published width; gated PixelRNN iff input = image + mask
    gated = PixelActorCritic(4, 1, 8, backbone="pixelrnn", backbone_kwargs=TINY_GATED).arch()["kwargs"]
    assert (gated["backbone_channels"], gated["backbone_mask"], gated["backbone_width"]) == (3, True, 48)
    mrp = PixelActorCritic(1, 1, 9, backbone="mrpnet").arch()["kwargs"]
    assert (mrp["backbone_channels"], mrp["backbone_width"]) == (1, 64)
    lowlight_rnn = PixelActorCritic(6, 3, 27, backbone="pixelrnn", backbone_width=4, backbone_kwargs=TINY_RNN)
    assert isinstance(lowlight_rnn.backbone_module, PixelRNN)
    assert lowlight_rnn.backbone_module.in_channels == 3


def test_old_arch_without_backbone_still_builds_as_fcn():
    old = {"class": "PixelActorCritic", "kwargs": {
        "in_channels": 6, "out_channels": 3, "n_actions": 27, "width": 8, "dilations": [1, 2],
        "branch_dilations": [2], "kernel_size": 3, "conv_gru": False, "downscale": 2, "cond_dim": 5,
        "log_std_bounds": [-5.0, 2.0], "policy_head_gain": 0.1, "bounded_mean": True}}
    net = PixelActorCritic(**old["kwargs"])
    assert net.backbone == "fcn" and isinstance(net.trunk, ConvTrunk)
    # the fcn arch is unchanged, so resuming an old run (expected_arch == policy.arch()) still works
    assert net.arch() == old
    assert PixelActorCritic(**old["kwargs"], backbone="fcn").arch() == old


def test_bad_backbone_arguments_raise():
    base = dict(in_channels=6, out_channels=3, n_actions=27)
    for bad, match in [
        (dict(backbone="resnet"), "backbone='resnet'"),
        (dict(backbone_width=8), "backbone='fcn'"),
        (dict(backbone_kwargs={"levels": 2}), "backbone='fcn'"),
        (dict(backbone="mrpnet", backbone_mask=True), "mask"),
        (dict(backbone="mrpnet", backbone_channels=7), "in_channels=6"),
        (dict(backbone="pixelrnn", backbone_channels=6, backbone_mask=True), "in_channels=6"),
        (dict(backbone="mrpnet", backbone_width=0), "backbone_width"),
        (dict(backbone="mrpnet", backbone_kwargs={"width": 8}), "backbone_width"),
        (dict(backbone="mrpnet", backbone_kwargs={"levels": 2}), "MRPNet"),
    ]:
        with pytest.raises(ValueError, match=match):
            PixelActorCritic(**base, **bad)
    with pytest.raises(CheckpointError, match="resnet"):
        build_model({"arch": {"class": "PixelActorCritic", "kwargs": base | {"backbone": "resnet"}}},
                    {"PixelActorCritic": PixelActorCritic})


# --- forward ----------------------------------------------------------------------------------
def test_lowlight_backbone_sees_pooled_image_planes_and_fuses_the_rest():
    torch.manual_seed(0)
    net = make(LOWLIGHT).eval()
    x, cond = inputs(net, b=2, h=17, w=14)
    seen = {}
    net.backbone_module.enc1.register_forward_hook(lambda m, i, o: seen.update(image=i[0]))
    net.trunk.fuse.register_forward_hook(lambda m, i, o: seen.update(fused=i[0], out=o))
    out = net(x, cond)
    assert out.logits.shape == (2, 3, 27, 17, 14) and out.value.shape == (2, 1, 17, 14)
    pooled = F.avg_pool2d(x, 2, ceil_mode=True)
    torch.testing.assert_close(seen["image"], pooled[:, :3])  # image planes only
    # fusion input = [MRPNet features of the image, the original planes, the cond planes]
    feats = net.backbone_module.features(pooled[:, :3])
    planes = cond[:, :, None, None].expand(2, 5, *pooled.shape[-2:])
    torch.testing.assert_close(seen["fused"], torch.cat([feats, pooled[:, 3:], planes], dim=1))
    assert net.trunk.fuse.in_channels == 8 + 3 + 5 and net.trunk.out_channels == SMALL["width"]
    # trunk == a reference computation from the supervised net's features
    z = torch.cat([pooled, planes], dim=1)
    torch.testing.assert_close(net.trunk(z), F.relu(net.trunk.fuse(torch.cat([feats, z[:, 3:]], dim=1))))
    # the original planes and cond matter (they reach the heads through the fusion conv)
    other = x.clone()
    other[:, 3:] = 0
    assert not torch.allclose(net(other, cond).logits, out.logits)
    assert not torch.allclose(net(x, torch.zeros_like(cond)).logits, out.logits)


@pytest.mark.parametrize("kwargs", [DENOISE, DENOISE_RNN])
def test_denoise_one_plane_shapes_and_gradients(kwargs):
    torch.manual_seed(0)
    net = make(kwargs)
    x, _ = inputs(net, b=3, h=10, w=9)
    out = net(x)
    assert out.logits.shape == (3, 1, 9, 10, 9) and out.value.shape == (3, 1, 10, 9)
    assert net.trunk.extra_channels == 0
    if net.gru is not None:
        assert out.hidden.shape == (3, SMALL["width"], 10, 9)
    (out.logits.sum() + out.value.sum()).backward()
    # (the GRU's hidden-state weights see a zero state on the first step: zero gradient)
    assert all(p.grad is not None and p.grad.abs().sum() > 0
               for name, p in net.named_parameters() if not name.startswith("gru.h_"))


def test_completion_gated_backbone_reads_image_and_mask():
    torch.manual_seed(0)
    net = make(COMPLETION).eval()
    x, _ = inputs(net, b=2, h=12, w=15)
    out = net(x)
    assert out.logits.shape == (2, 1, 8, 12, 15) and out.value.shape == (2, 1, 12, 15)
    assert net.trunk.mask and net.trunk.extra_channels == 0
    feats = net.backbone_module.features(x[:, :3], x[:, 3:])
    torch.testing.assert_close(net.trunk(x), F.relu(net.trunk.fuse(feats)))
    other = x.clone()
    other[:, 3] = 1 - other[:, 3]
    assert not torch.allclose(net(other).logits, out.logits)  # the mask is read
    with pytest.raises(ImageError, match=r"\(B, 4, H, W\)"):
        net(x[:, :3])


def test_supervised_head_is_dropped():
    net = make(DENOISE)
    assert net.backbone_module.head is None
    assert not any(k.startswith("trunk.net.head") for k in net.state_dict())
    assert isinstance(net.trunk, SupervisedTrunk)


# --- load_backbone ----------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs,model", [
    (LOWLIGHT, lambda: MRPNet(3, width=8)),
    (DENOISE, lambda: MRPNet(1, width=8)),
    (COMPLETION, lambda: GatedPixelRNN(3, width=8, **TINY_GATED)),
    (DENOISE_RNN, lambda: PixelRNN(1, width=4, **TINY_RNN)),
])
def test_load_backbone_copies_the_supervised_weights_exactly(kwargs, model, tmp_path):
    torch.manual_seed(1)
    sup = model()
    if isinstance(sup, GatedPixelRNN):  # non-trivial batch-norm statistics must be copied too
        sup.train()
        with torch.no_grad():
            sup(torch.rand(2, 3, 16, 16), (torch.rand(2, 1, 16, 16) > 0.5).float())
    path = save_supervised(sup, tmp_path / "best.pt")
    torch.manual_seed(2)
    policy = make(kwargs)
    rest_before = {k: v for k, v in clone_state(policy).items() if not k.startswith("trunk.net.")}
    summary = load_backbone(policy, path)

    saved = load_checkpoint(path)["state_dict"]
    copied = policy.backbone_module.state_dict()
    assert set(copied) == {k for k in saved if not k.startswith("head.")}
    for name, tensor in copied.items():
        assert torch.equal(tensor, saved[name]), name
    for name, tensor in clone_state(policy).items():  # fusion, branches and heads untouched
        if name in rest_before:
            assert torch.equal(tensor, rest_before[name]), name
    n_params = sum(p.numel() for n, p in sup.named_parameters() if not n.startswith("head."))
    assert summary == {"path": str(path), "model": type(sup).__name__, "part": None, "tensors": len(copied),
                       "params": n_params, "skipped": ["head.bias", "head.weight"]}
    # the backbone now computes the supervised model's features
    policy.eval(), sup.eval()
    x, _ = inputs(policy, b=1, h=16, w=16)
    image = x[:, :sup.in_channels]
    ref = sup.features(image, x[:, -1:]) if isinstance(sup, GatedPixelRNN) else sup.features(image)
    got = (policy.backbone_module.features(image, x[:, -1:]) if isinstance(sup, GatedPixelRNN)
           else policy.backbone_module.features(image))
    torch.testing.assert_close(got, ref, rtol=0, atol=0)


def test_load_backbone_takes_the_mrpnet_part_of_a_combined_model(tmp_path):
    torch.manual_seed(3)
    combined = CombinedModel(channels=3, width=8)
    path = save_supervised(combined, tmp_path / "combined.pt")
    policy = make(LOWLIGHT)
    summary = load_backbone(policy, path)
    for name, tensor in policy.backbone_module.state_dict().items():
        assert torch.equal(tensor, combined.denoiser.state_dict()[name]), name
    assert summary["model"] == "CombinedModel" and summary["part"] == "denoiser"
    assert summary["tensors"] == 6  # enc1, enc2, dec: weight + bias
    assert "denoiser.head.weight" in summary["skipped"]
    assert any(k.startswith("generator.") for k in summary["skipped"])


def test_load_backbone_refuses_what_does_not_fit(tmp_path):
    gated = save_supervised(GatedPixelRNN(3, width=8, **TINY_GATED), tmp_path / "gated.pt")
    wide = save_supervised(MRPNet(1, width=16), tmp_path / "wide.pt")
    rgb = save_supervised(MRPNet(3, width=8), tmp_path / "rgb.pt")
    generator = save_supervised(Generator(1, width=8), tmp_path / "generator.pt")
    deeper = save_supervised(GatedPixelRNN(3, width=8, n_gated=2, n_res=1), tmp_path / "deeper.pt")
    policy = make(DENOISE)
    before = clone_state(policy)
    with pytest.raises(CheckpointError, match=r"gated\.pt.*GatedPixelRNN.*MRPNet"):
        load_backbone(policy, gated)
    with pytest.raises(CheckpointError, match=r"wide\.pt.*width=16.*width=8.*backbone_width=16"):
        load_backbone(policy, wide)
    with pytest.raises(CheckpointError, match=r"rgb\.pt.*in_channels=3.*backbone_channels=3"):
        load_backbone(policy, rgb)
    with pytest.raises(CheckpointError, match=r"generator\.pt.*Generator"):
        load_backbone(policy, generator)
    with pytest.raises(CheckpointError, match=r"deeper\.pt.*n_gated=2.*backbone_kwargs\['n_gated'\]=2"):
        load_backbone(make(COMPLETION), deeper)
    with pytest.raises(CheckpointError, match=r"gated\.pt.*backbone='fcn'"):
        load_backbone(PixelActorCritic(1, 1, 9, **SMALL), gated)
    lying = tmp_path / "lying.pt"  # arch says width 8, the tensors are width 16
    save_checkpoint(lying, model=MRPNet(1, width=16), arch=MRPNet(1, width=8).arch())
    with pytest.raises(CheckpointError, match=r"lying\.pt.*do not fit.*enc1\.weight"):
        load_backbone(policy, lying)
    with pytest.raises(CheckpointError, match="missing.pt"):
        load_backbone(policy, tmp_path / "missing.pt")
    with pytest.raises(TypeError, match="PixelActorCritic"):
        load_backbone(MRPNet(1, width=8), rgb)
    for name, tensor in policy.state_dict().items():  # nothing was half-loaded
        assert torch.equal(tensor, before[name]), name


# --- freezing ---------------------------------------------------------------------------------
def test_backbone_parameters_are_the_supervised_nets():
    policy = make(COMPLETION)
    assert [id(p) for p in backbone_parameters(policy)] == [id(p) for p in policy.trunk.net.parameters()]
    fuse = {id(p) for p in policy.trunk.fuse.parameters()}
    assert not fuse & {id(p) for p in backbone_parameters(policy)}
    fcn = PixelActorCritic(1, 1, 9, **SMALL)
    assert [id(p) for p in backbone_parameters(fcn)] == [id(p) for p in fcn.trunk.parameters()]


def test_frozen_backbone_gets_no_gradients_and_keeps_batchnorm_statistics():
    torch.manual_seed(0)
    policy = make(COMPLETION)
    set_backbone_trainable(policy, False)
    policy.train()  # e.g. an agent calling train(): the frozen backbone stays in eval mode
    assert policy.training and not policy.backbone_module.training
    assert all(not p.requires_grad for p in backbone_parameters(policy))
    stats = clone_state(policy.backbone_module)
    x, _ = inputs(policy, b=2, h=12, w=12)
    out = policy(x)
    (out.logits.sum() + out.value.sum()).backward()
    assert all(p.grad is None for p in backbone_parameters(policy))
    heads = [policy.trunk.fuse.weight, policy.policy_head.weight, policy.value_head.weight]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in heads)
    for name, tensor in policy.backbone_module.state_dict().items():
        assert torch.equal(tensor, stats[name]), name  # running_mean / var untouched
    set_backbone_trainable(policy, True)
    assert policy.backbone_module.training and all(p.requires_grad for p in backbone_parameters(policy))
    with pytest.raises(TypeError, match="True or False"):
        set_backbone_trainable(policy, 0)


@pytest.mark.parametrize("algorithm", ["a3c", "sac"])
def test_frozen_backbone_is_not_updated_while_heads_train(algorithm):
    venv = envs.make_vec("rlenhance/Denoise-v0", num_envs=2, device="cpu", crop=16, max_episode_steps=2)
    torch.manual_seed(0)
    policy = PixelActorCritic(**policy_kwargs_from_env(venv, **SMALL, backbone="mrpnet", backbone_width=8))
    if algorithm == "a3c":
        agent = A3C(policy, A3CConfig(lr=1e-2, seed=0))
    else:  # updates from the first episode on
        agent = SAC(policy, SACConfig(batch_size=2, learning_starts=0, seed=0))
    set_backbone_trainable(policy, False)
    backbone = [p.detach().clone() for p in backbone_parameters(policy)]
    heads = policy.policy_head.weight.detach().clone()
    agent.train_episode(venv, seed=0)
    assert all(torch.equal(p, q) for p, q in zip(backbone_parameters(policy), backbone))
    assert not torch.equal(policy.policy_head.weight, heads)
    set_backbone_trainable(policy, True)  # after the K frozen episodes the same optimiser trains it
    agent.train_episode(venv)
    assert not all(torch.equal(p, q) for p, q in zip(backbone_parameters(policy), backbone))


# --- bootstrapping, end to end ----------------------------------------------------------------
def _train_denoiser(width, steps, crop, sigma, seed):
    """A tiny MRPNet denoiser on gray noisy crops of the embedded photos."""
    torch.manual_seed(seed)
    net = MRPNet(1, width=width)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    rng, gen = np.random.default_rng(seed), torch.Generator().manual_seed(seed)
    data = BuiltinImages(gray=True)
    losses = []
    for _ in range(steps):
        clean = sample_batch(data, 8, crop=crop, rng=rng)["high"]
        loss = F.mse_loss(net(add_gaussian_noise(clean, sigma, generator=gen)), clean)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return net, losses


def test_bootstrapped_agent_runs_from_a_trained_denoiser(tmp_path):
    """supervised denoiser -> checkpoint -> frozen "mrpnet" backbone -> A3C on Denoise-v0.

    Whether the trained trunk makes the agent learn faster shows only after a few hundred episodes of
    32 70x70 crops (docs/training.md#options). At a test's budget (tens of episodes of 4 32x32 crops)
    both agents' greedy policies mostly apply the same single filter everywhere and score the same, so
    this checks the pipeline and that the bootstrapped backbone really is the denoiser and stays it
    while the heads learn.
    """
    sigma, width = 25.0, 8
    sup, losses = _train_denoiser(width, steps=20, crop=32, sigma=sigma, seed=0)
    assert np.mean(losses[-5:]) < np.mean(losses[:5])  # it learned something
    path = save_supervised(sup, tmp_path / "best.pt")
    kw = dict(device="cpu", crop=24, max_episode_steps=2, sigma=sigma)
    venv = envs.make_vec("rlenhance/Denoise-v0", num_envs=2, **kw)
    eval_env = envs.make_vec("rlenhance/Denoise-v0", num_envs=4, split="val", **kw)
    returns = {}
    for boot in (False, True):
        torch.manual_seed(0)
        policy = PixelActorCritic(**policy_kwargs_from_env(venv, **SMALL, backbone="mrpnet", backbone_width=width))
        if boot:
            load_backbone(policy, path)
            set_backbone_trainable(policy, False)
        agent = A3C(policy, A3CConfig(lr=1e-3, seed=0))
        for episode in range(3):
            agent.train_episode(venv, seed=0 if episode == 0 else None)
        returns[boot] = agent.evaluate(eval_env, seed=123)["return_mean"]
        if boot:
            x = torch.rand(1, 1, 16, 16)
            torch.testing.assert_close(policy.backbone_module.features(x), sup.features(x), rtol=0, atol=0)
    assert all(np.isfinite(r) for r in returns.values())
