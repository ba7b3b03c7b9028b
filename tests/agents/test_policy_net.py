"""PixelActorCritic (rlenhance.models.policy): shapes, published sizes, downscaling, ConvGRU, cond."""

import itertools
import json

import pytest
import torch
import torch.nn.functional as F

from rlenhance.checkpoint import build_model
from rlenhance.errors import CheckpointError, ImageError
from rlenhance.models.policy import PixelActorCritic, PolicyOutput, act, blocks_to_pixels, build_policy_input

SMALL = dict(width=8, dilations=(1, 2), branch_dilations=(2,))


def n_params(net):
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize(
    "conv_gru,downscale,cond_dim,n_actions,size",
    list(itertools.product([False, True], [1, 2, 4], [0, 5], [27, None], [(13, 10)]))
    + [(True, 3, 2, 9, (1, 1)), (False, 4, 0, 3, (5, 17))],
)
def test_output_shapes_every_option(conv_gru, downscale, cond_dim, n_actions, size):
    b, c_in, c_out = 2, 6, 3
    h, w = size
    net = PixelActorCritic(c_in, c_out, n_actions, conv_gru=conv_gru, downscale=downscale,
                           cond_dim=cond_dim, **SMALL)
    x = torch.rand(b, c_in, h, w)
    cond = torch.rand(b, cond_dim) if cond_dim else None
    out = net(x, cond)
    assert isinstance(out, PolicyOutput)
    assert out.value.shape == (b, 1, h, w)
    if n_actions is None:
        assert out.logits is None
        assert out.mean.shape == out.log_std.shape == (b, c_out, h, w)
        assert out.mean.abs().max() < 1  # bounded mean (tanh)
        lo, hi = net.log_std_bounds
        assert out.log_std.min() >= lo and out.log_std.max() <= hi
    else:
        assert out.mean is None and out.log_std is None
        assert out.logits.shape == (b, c_out, n_actions, h, w)
    hh, ww = -(-h // downscale), -(-w // downscale)
    if conv_gru:
        assert out.hidden.shape == (b, SMALL["width"], hh, ww)
        out2 = net(x, cond, out.hidden)  # the state can be fed back
        assert out2.hidden.shape == out.hidden.shape
    else:
        assert out.hidden is None
    assert all(torch.isfinite(t).all() for t in out if t is not None)


def test_rellie_and_pixelrl_parameter_counts():
    # ReLLIE: 307,602 parameters (3 -> 64 conv, dilations 2,3,4; branches 3,2; 3 x 27-way heads).
    rellie = PixelActorCritic(3, 3, 27, width=64, dilations=(1, 2, 3, 4), branch_dilations=(3, 2))
    assert n_params(rellie) == 307_602
    # PixelRL with ConvGRU: "486k" parameters (grey input, 9 actions).
    pixelrl = PixelActorCritic(1, 1, 9, width=64, conv_gru=True)
    assert round(n_params(pixelrl) / 1000) == 486


def test_receptive_field_is_33_for_rellie_layout():
    # seeded, 16 channels and a non-zero input: with 4 channels on a zero image every ReLU of a random
    # init could be dead at the field's edge, and the measured field came out smaller (about 1 run in 3)
    torch.manual_seed(0)
    net = PixelActorCritic(1, 1, 3, width=16, dilations=(1, 2, 3, 4), branch_dilations=(3, 2))
    x = torch.rand(1, 1, 61, 61, requires_grad=True)
    net(x).logits[0, 0, 0, 30, 30].backward()
    rows = (x.grad[0, 0].abs().sum(dim=1) > 0).nonzero().flatten()
    assert int(rows.max() - rows.min() + 1) == 33


@pytest.mark.parametrize("s,h,w", [(2, 12, 8), (4, 13, 10), (3, 7, 7)])
def test_downscale_trunk_sees_pooled_input(s, h, w):
    net = PixelActorCritic(2, 1, 5, downscale=s, cond_dim=1, **SMALL)
    seen = {}
    net.trunk.register_forward_hook(lambda m, inp, out: seen.update(inp=inp[0], out=out))
    x = torch.rand(1, 2, h, w)
    net(x, torch.full((1, 1), 0.25))
    hh, ww = -(-h // s), -(-w // s)
    assert seen["inp"].shape == (1, 3, hh, ww)
    assert seen["out"].shape[-2:] == (hh, ww)
    assert net.working_size(h, w) == (hh, ww)
    # every low-res pixel is the mean of its s x s block (partial border blocks: valid pixels only)
    for i, j in [(0, 0), (hh - 1, ww - 1), (hh - 1, 0)]:
        block = x[0, :, i * s:(i + 1) * s, j * s:(j + 1) * s]
        torch.testing.assert_close(seen["inp"][0, :2, i, j], block.mean(dim=(1, 2)))
    assert torch.all(seen["inp"][0, 2] == 0.25)  # the cond plane


def test_downscale_reduces_work_and_outputs_are_smooth():
    full = PixelActorCritic(3, 3, 4, downscale=1, **SMALL)
    down = PixelActorCritic(3, 3, 4, downscale=4, **SMALL)
    down.load_state_dict(full.state_dict())  # same weights, only the working resolution differs
    shapes = []
    down.trunk.register_forward_hook(lambda m, i, o: shapes.append(o.numel()))
    full.trunk.register_forward_hook(lambda m, i, o: shapes.append(o.numel()))
    x = torch.rand(1, 3, 32, 32)
    down(x), full(x)
    assert shapes[0] * 16 == shapes[1]
    # a block-constant input gives the same low-res features as running the net on the small image
    small = torch.rand(1, 3, 8, 8)
    big = small.repeat_interleave(4, dim=2).repeat_interleave(4, dim=3)
    up = F.interpolate(full(small).value, scale_factor=4, mode="bilinear", align_corners=False)
    torch.testing.assert_close(down(big).value, up)


def test_convgru_hidden_state_changes_outputs():
    torch.manual_seed(0)
    net = PixelActorCritic(1, 1, 9, conv_gru=True, downscale=2, **SMALL)
    x = torch.rand(2, 1, 9, 11)
    first = net(x)
    second = net(x, hidden=first.hidden)
    assert not torch.allclose(first.logits, second.logits)
    torch.testing.assert_close(first.value, second.value)  # the value branch has no memory
    again = net(x, hidden=None)  # None == zero state: deterministic
    torch.testing.assert_close(first.logits, again.logits)
    # gradients reach the GRU through two steps
    second.logits.sum().backward()
    assert net.gru.h_zr.weight.grad.abs().sum() > 0


def test_cond_changes_outputs_and_everything_gets_gradients():
    torch.manual_seed(0)
    net = PixelActorCritic(6, 3, None, cond_dim=5, downscale=2, **SMALL)
    x = torch.rand(2, 6, 10, 10)
    a = net(x, torch.zeros(2, 5))
    b = net(x, torch.ones(2, 5))
    assert not torch.allclose(a.mean, b.mean)
    (b.mean.sum() + b.log_std.sum() + b.value.sum()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_initial_policy_is_near_uniform():
    net = PixelActorCritic(3, 3, 27, width=16)
    probs = net(torch.rand(1, 3, 8, 8)).logits.softmax(dim=2)
    assert (probs - 1 / 27).abs().max() < 0.02


def test_bad_inputs_raise():
    net = PixelActorCritic(6, 3, 27, cond_dim=5, conv_gru=True, **SMALL)
    with pytest.raises(ImageError, match=r"\(B, 6, H, W\)"):
        net(torch.rand(1, 3, 8, 8), torch.rand(1, 5))
    with pytest.raises(ValueError, match="cond"):
        net(torch.rand(1, 6, 8, 8))
    with pytest.raises(ValueError, match="cond"):
        net(torch.rand(1, 6, 8, 8), torch.rand(1, 4))
    with pytest.raises(ValueError, match="hidden"):
        net(torch.rand(1, 6, 8, 8), torch.rand(1, 5), hidden=torch.zeros(1, 8, 4, 4))
    with pytest.raises(ValueError, match="cond_dim=0"):
        PixelActorCritic(6, 3, 27, **SMALL)(torch.rand(1, 6, 8, 8), torch.rand(1, 5))
    for bad in (dict(n_actions=1), dict(downscale=0), dict(width=0), dict(kernel_size=4),
                dict(dilations=()), dict(cond_dim=-1), dict(log_std_bounds=(1.0, -1.0))):
        kw = dict(in_channels=1, out_channels=1, n_actions=3) | bad
        with pytest.raises(ValueError):
            PixelActorCritic(**kw)


def test_arch_round_trip_is_json_and_rebuilds():
    net = PixelActorCritic(6, 3, 27, width=8, conv_gru=True, downscale=4, cond_dim=5)
    arch = json.loads(json.dumps(net.arch()))
    assert arch["class"] == "PixelActorCritic"
    again = build_model({"arch": arch, "state_dict": net.state_dict()}, {"PixelActorCritic": PixelActorCritic})
    x, c = torch.rand(1, 6, 9, 9), torch.rand(1, 5)
    torch.testing.assert_close(again(x, c).logits, net(x, c).logits)
    assert again.arch() == net.arch()
    assert net.trunk.out_channels == 8
    with pytest.raises(CheckpointError):
        build_model({"arch": {"class": "ZeroDCE", "kwargs": {}}}, {"PixelActorCritic": PixelActorCritic})
    with pytest.raises(CheckpointError):
        build_model({"arch": {"class": "PixelActorCritic", "kwargs": {"bogus": 1}}},
                    {"PixelActorCritic": PixelActorCritic})


def test_build_policy_input_order_and_errors():
    img, orig, mask = torch.rand(2, 3, 4, 5), torch.rand(2, 3, 4, 5), torch.rand(2, 1, 4, 5)
    cond = torch.rand(2, 5)
    x, c = build_policy_input({"cond": cond, "original": orig, "image": img})
    torch.testing.assert_close(x, torch.cat([img, orig], dim=1))
    assert c is cond
    x, c = build_policy_input({"mask": mask, "image": img})
    torch.testing.assert_close(x, torch.cat([img, mask], dim=1))
    assert c is None
    with pytest.raises(ImageError, match="image"):
        build_policy_input({"cond": cond})
    with pytest.raises(ImageError, match="original"):
        build_policy_input({"image": img, "original": torch.rand(2, 3, 4, 4)})


# --- predict: the one decoding of outputs into actions -------------------------------------------------
def _output(n_actions, bounded_mean=True, seed=0):
    torch.manual_seed(seed)
    net = PixelActorCritic(6, 3, n_actions, bounded_mean=bounded_mean, **SMALL)
    with torch.no_grad():  # spread the outputs: the near-uniform init makes every rule look alike
        net.policy_head.weight.normal_(0, 2.0)
        net.policy_head.bias.normal_(0, 2.0)
    return net, net(torch.rand(2, 6, 9, 7))


def test_predict_of_a_categorical_policy_is_its_mode_or_a_sample():
    net, out = _output(5)
    assert torch.equal(net.predict(out), out.logits.argmax(dim=2))
    assert net.predict(out).dtype == torch.int64
    draws = [net.predict(out, deterministic=False, generator=torch.Generator().manual_seed(s)) for s in (0, 0, 1)]
    assert torch.equal(draws[0], draws[1]) and not torch.equal(draws[0], draws[2])
    assert torch.equal(draws[0], net.distribution(out).sample(torch.Generator().manual_seed(0)))
    assert int(draws[0].min()) >= 0 and int(draws[0].max()) < 5


@pytest.mark.parametrize("bounded_mean", [True, False])
def test_predict_of_a_gaussian_policy_a3c_clips_sac_squashes(bounded_mean):
    net, out = _output(None, bounded_mean=bounded_mean)
    mode = out.mean.clamp(-1, 1) if bounded_mean else torch.tanh(out.mean)
    assert torch.equal(net.predict(out), mode)
    noise = torch.randn(out.mean.shape, generator=torch.Generator().manual_seed(3))
    u = out.mean + out.log_std.exp() * noise
    sample = net.predict(out, deterministic=False, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(sample, u.clamp(-1, 1) if bounded_mean else torch.tanh(u))
    assert sample.abs().max() <= 1
    if bounded_mean:  # A3C's action_clip: another bound, or none
        unclipped = net.predict(out, deterministic=False, generator=torch.Generator().manual_seed(3), clip=None)
        torch.testing.assert_close(unclipped, u)
        assert unclipped.abs().max() > 1  # the head's spread leaves the box
        half = net.predict(out, deterministic=False, generator=torch.Generator().manual_seed(3), clip=0.5)
        assert half.abs().max() <= 0.5


def test_action_values_expected_or_argmax_entry_of_the_table():
    net, out = _output(5)
    table = torch.linspace(-0.5, 1.0, 5)
    expected = (out.logits.softmax(dim=2) * table.view(1, 1, 5, 1, 1)).sum(dim=2)
    torch.testing.assert_close(net.action_values(out, table), expected)
    assert torch.equal(net.action_values(out, table, mode="argmax"), table[out.logits.argmax(dim=2)])
    with pytest.raises(ValueError, match="mode"):
        net.action_values(out, table, mode="mode")
    with pytest.raises(ValueError, match="table"):
        net.action_values(out)
    continuous, out = _output(None, bounded_mean=False)
    assert torch.equal(continuous.action_values(out, mode="argmax"), torch.tanh(out.mean))  # no table needed
    expected = continuous.distribution(out).expected_action()  # "mean": E[tanh(u)], the expected action
    torch.testing.assert_close(continuous.action_values(out), expected)
    clipped, out = _output(None, bounded_mean=True)  # A3C's: the expected clipped sample
    torch.testing.assert_close(clipped.action_values(out), clipped.distribution(out).expected_action(clip=1.0))
    assert torch.equal(clipped.action_values(out, mode="argmax"), out.mean.clamp(-1, 1))


@pytest.mark.parametrize("block_actions", [False, True], ids=["per-pixel", "blocks"])
def test_act_is_the_forward_pass_and_predict_with_block_actions_repeated_over_their_pixels(block_actions):
    """``act``: the policy input of the observation, the ConvGRU state carried, the mode (or a
    generator's sample) per pixel, or per 3 x 3 block cropped to an odd size."""
    net = PixelActorCritic(4, 1, 8, downscale=3, conv_gru=True, **SMALL)
    with torch.no_grad():  # spread the outputs: the near-uniform init picks one action everywhere
        net.policy_head.weight.normal_(0, 2.0, generator=torch.Generator().manual_seed(0))
    obs = {"mask": torch.rand(2, 1, 11, 7), "image": torch.rand(2, 3, 11, 7)}
    x = torch.cat([obs["image"], obs["mask"]], dim=1)
    hidden = None
    for _ in range(2):
        ref = net(x, None, hidden, full_resolution=not block_actions)
        actions, hidden = act(net, obs, hidden, block_actions=block_actions)
        expected = net.predict(ref)
        if block_actions:
            expected = blocks_to_pixels(expected, 3, (11, 7))
            assert torch.equal(actions[..., :3, :3], actions[..., :1, :1].expand(-1, -1, 3, 3))
        assert actions.shape == (2, 1, 11, 7) and actions.dtype == torch.int64
        assert torch.equal(actions, expected) and len(actions.unique()) > 1
        assert torch.equal(hidden, ref.hidden)
    draws = [act(net, obs, block_actions=block_actions, deterministic=False,
                 generator=torch.Generator().manual_seed(s))[0] for s in (0, 0, 1)]
    assert torch.equal(draws[0], draws[1]) and not torch.equal(draws[0], draws[2])


def test_act_gives_a_conditioned_net_its_cond():
    net = PixelActorCritic(6, 3, None, cond_dim=5, **SMALL)
    obs = {"image": torch.rand(1, 3, 8, 9), "original": torch.rand(1, 3, 8, 9), "cond": torch.rand(1, 5)}
    actions, hidden = act(net, obs)
    assert torch.equal(actions, net.predict(net(torch.cat([obs["image"], obs["original"]], 1), obs["cond"])))
    assert actions.dtype == torch.float32 and hidden is None


@pytest.mark.parametrize("n_actions, downscale", [(27, 1), (None, 4)])
def test_forward_without_value_gives_the_same_actions(n_actions, downscale):
    net = PixelActorCritic(6, 3, n_actions, cond_dim=5, downscale=downscale, **SMALL)
    x, cond = torch.rand(2, 6, 13, 10), torch.rand(2, 5)
    full = net(x, cond)
    for full_resolution in (True, False):
        out = net(x, cond, full_resolution=full_resolution, with_value=False)
        ref = net(x, cond, full_resolution=full_resolution)
        assert out.value is None and ref.value is not None
        for name in ("logits", "mean", "log_std"):
            a, b = getattr(out, name), getattr(ref, name)
            assert (a is None and b is None) or torch.equal(a, b)
    assert full.value.shape == (2, 1, 13, 10)


def test_cond_film_starts_as_the_plain_net_and_its_scale_can_switch_the_image_off():
    torch.manual_seed(0)
    plain = PixelActorCritic(6, 3, 5, cond_dim=2, downscale=2, **SMALL)
    film = PixelActorCritic(6, 3, 5, cond_dim=2, downscale=2, cond_film=True, **SMALL)
    missing, unexpected = film.load_state_dict(plain.state_dict(), strict=False)
    assert sorted(missing) == ["film.bias", "film.weight"] and not unexpected
    x, other = torch.rand(2, 6, 12, 10), torch.rand(2, 6, 12, 10)
    cond = torch.tensor([[0.0, 0.3], [1.0, 0.3]])
    torch.testing.assert_close(film(x, cond).logits, plain(x, cond).logits)  # zero-initialised: no change

    with torch.no_grad():  # cond[0] = 1 scales every policy-branch feature by 1 - 1 = 0
        film.film.weight[16:24, 0] = -1.0  # rows: trunk scale, trunk shift, policy scale, policy shift
    a, b = film(x, cond).logits, film(other, cond).logits
    assert not torch.allclose(a[0], b[0])  # cond[0] = 0: the maps follow the image
    torch.testing.assert_close(a[1], b[1])  # cond[0] = 1: the same maps whatever the image ...
    torch.testing.assert_close(a[1], a[1, :, :, :1, :1].expand_as(a[1]))  # ... and flat
    a.sum().backward()
    assert film.film.weight.grad.abs().sum() > 0


def test_cond_film_round_trips_and_needs_cond():
    net = PixelActorCritic(6, 3, 5, cond_dim=2, cond_film=True, **SMALL)
    arch = json.loads(json.dumps(net.arch()))
    assert arch["kwargs"]["cond_film"] is True
    assert "cond_film" not in PixelActorCritic(6, 3, 5, cond_dim=2, **SMALL).arch()["kwargs"]
    again = build_model({"arch": arch, "state_dict": net.state_dict()}, {"PixelActorCritic": PixelActorCritic})
    assert again.film is not None
    with pytest.raises(ValueError, match="cond_film=True needs conditioning values"):
        PixelActorCritic(6, 3, 5, cond_film=True, **SMALL)
