"""Tests for rlenhance.checkpoint: round trip, atomic saving, every refusal on load, strict build, the
typed metadata specs, and the one-line refusal of files of another format version."""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from rlenhance.checkpoint import (
    FORMAT_TAG,
    FORMAT_VERSION,
    SPECS,
    LowLightPolicySpec,
    RolloutPolicySpec,
    SupervisedSpec,
    build_model,
    check_finite,
    load_checkpoint,
    save_checkpoint,
)
from rlenhance.checkpoint import files as ckpt_mod
from rlenhance.errors import CheckpointError
from rlenhance.transitions import CompletionTransition, DenoiseTransition, LowLightTransition


class TinyNet(nn.Module):
    """Small model with a float parameter, a buffer and an integer buffer."""

    def __init__(self, channels: int = 3, hidden: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, hidden, 3, padding=1)
        self.norm = nn.BatchNorm2d(hidden)  # adds float buffers and the int64 num_batches_tracked
        self.out = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.norm(self.conv(x))))


REGISTRY = {"TinyNet": TinyNet}


def _arch(channels: int = 3, hidden: int = 4) -> dict:
    return {"class": "TinyNet", "kwargs": {"channels": channels, "hidden": hidden}}


def _model(seed: int = 0, **kwargs) -> TinyNet:
    torch.manual_seed(seed)
    model = TinyNet(**kwargs)
    with torch.no_grad():  # non-default buffers so a lost buffer would show
        model.norm.running_mean.uniform_(-1, 1)
        model.norm.running_var.uniform_(0.5, 2)
        model.norm.num_batches_tracked.fill_(7)
    return model


def _raw_payload(model: nn.Module, **overrides) -> dict:
    payload = {"format": FORMAT_TAG, "version": FORMAT_VERSION, "arch": _arch(),
               "state_dict": model.state_dict(), "extra": None}
    payload.update(overrides)
    return payload


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, TinyNet]:
    model = _model()
    path = save_checkpoint(tmp_path / "run" / "ckpt.pt", model=model, arch=_arch(), extra={"step": 3})
    return path, model


# ---------------------------------------------------------------- round trip

def test_round_trip_restores_weights_buffers_and_extra(tmp_path):
    model = _model().eval()
    extra = {"step": 12, "lr": 3e-4, "name": "run-a", "history": [1.0, 2.5], "rng": torch.arange(4), "cfg": None}
    path = save_checkpoint(tmp_path / "a" / "b" / "model.pt", model=model, arch=_arch(), extra=extra)
    assert path == tmp_path / "a" / "b" / "model.pt" and path.is_file()  # parent folders created

    loaded = load_checkpoint(path, expected_arch=_arch())
    assert loaded["format"] == FORMAT_TAG and loaded["version"] == FORMAT_VERSION
    assert loaded["arch"] == _arch()
    assert loaded["path"] == str(path)
    assert loaded["extra"]["step"] == 12 and loaded["extra"]["name"] == "run-a"
    assert loaded["extra"]["history"] == [1.0, 2.5] and loaded["extra"]["cfg"] is None
    assert math.isclose(loaded["extra"]["lr"], 3e-4)
    assert torch.equal(loaded["extra"]["rng"], torch.arange(4))

    rebuilt = build_model(loaded, REGISTRY).eval()
    for name, tensor in model.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[name], tensor), name
    x = torch.rand(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), model(x))


def test_save_without_extra_and_overwrite(tmp_path):
    path = tmp_path / "m.pt"
    save_checkpoint(path, model=_model(0), arch=_arch())
    assert load_checkpoint(path)["extra"] is None
    second = _model(1)
    save_checkpoint(path, model=second, arch=_arch(), extra={"step": 2})
    loaded = load_checkpoint(path)
    assert loaded["extra"] == {"step": 2}
    assert torch.equal(loaded["state_dict"]["conv.weight"], second.conv.weight.detach())
    assert sorted(os.listdir(tmp_path)) == ["m.pt"]


def test_save_does_not_keep_references_to_caller_arch(tmp_path):
    arch = _arch()
    save_checkpoint(tmp_path / "m.pt", model=_model(), arch=arch)
    arch["kwargs"]["hidden"] = 99
    assert load_checkpoint(tmp_path / "m.pt")["arch"] == _arch()


# ---------------------------------------------------------------- atomicity

def _assert_old_checkpoint_intact(path: Path, old: TinyNet) -> None:
    loaded = load_checkpoint(path)
    assert loaded["extra"] == {"step": 3}
    assert torch.equal(loaded["state_dict"]["conv.weight"], old.conv.weight.detach())
    assert os.listdir(path.parent) == [path.name], "a temporary file was left behind"


def _partial_save(obj, f, *args, **kwargs):
    """``torch.save`` that writes a few bytes, then fails as a full disk would."""
    partial = b"PK\x03\x04 partial checkpoint bytes"
    if hasattr(f, "write"):
        f.write(partial)
    else:
        Path(f).write_bytes(partial)
    raise OSError("disk full (simulated)")


def _raising(error: BaseException):
    def fail(*args, **kwargs):
        raise error
    return fail


@pytest.mark.parametrize("where, name, replacement, error", [
    (torch, "save", _partial_save, OSError),                                           # while writing
    (ckpt_mod.os, "replace", _raising(OSError("rename failed (simulated)")), OSError),  # at the rename
    (ckpt_mod.os, "fsync", _raising(KeyboardInterrupt()), KeyboardInterrupt),           # interrupted
], ids=["write", "rename", "interrupt"])
def test_failed_save_leaves_old_file_and_no_temp(saved, monkeypatch, where, name, replacement, error):
    path, old = saved
    monkeypatch.setattr(where, name, replacement)
    with pytest.raises(error, match="simulated" if error is OSError else None):
        save_checkpoint(path, model=_model(5), arch=_arch(), extra={"step": 4})
    monkeypatch.undo()
    _assert_old_checkpoint_intact(path, old)


def test_save_refuses_nan_weights_and_keeps_old_file(saved):
    path, old = saved
    broken = _model(5)
    with torch.no_grad():
        broken.out.bias[1] = float("nan")
    with pytest.raises(CheckpointError, match=r"out\.bias"):
        save_checkpoint(path, model=broken, arch=_arch())
    _assert_old_checkpoint_intact(path, old)


def test_save_refuses_extra_that_would_not_load_back(saved):
    path, old = saved
    for bad in ({"metric": np.float64(1.5)}, {"where": Path("/tmp")}):
        with pytest.raises(CheckpointError, match="weights_only"):
            save_checkpoint(path, model=_model(5), arch=_arch(), extra=bad)
    _assert_old_checkpoint_intact(path, old)


@pytest.mark.parametrize("arch", [
    {"kwargs": {}},                                  # no class
    {"class": "TinyNet"},                            # no kwargs
    {"class": TinyNet, "kwargs": {}},                # class object, not a name
    {"class": "TinyNet", "kwargs": {"f": print}},    # not JSON-able
    ["TinyNet", {}],
])
def test_save_refuses_malformed_arch(tmp_path, arch):
    with pytest.raises(CheckpointError, match="arch"):
        save_checkpoint(tmp_path / "m.pt", model=_model(), arch=arch)
    assert not (tmp_path / "m.pt").exists()


# ---------------------------------------------------------------- load refusals

def test_load_missing_file(tmp_path):
    path = tmp_path / "nope.pt"
    with pytest.raises(CheckpointError, match="nope.pt: no such file") as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


def test_a_full_disk_says_so_naming_the_file_and_keeps_the_previous_checkpoint(tmp_path, full_disk):
    path = save_checkpoint(tmp_path / "last.pt", model=nn.Linear(2, 2), arch={"class": "Linear", "kwargs": {}})
    before = path.read_bytes()
    full_disk("last.pt")
    with pytest.raises(OSError, match=rf"^\[Errno 28\] cannot write {re.escape(str(path))}: No space left on device$"):
        save_checkpoint(path, model=nn.Linear(64, 64), arch={"class": "Linear", "kwargs": {}})
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_load_folder_or_device_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="it is a folder"):
        load_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match=r"/dev/zero: not a regular file \(a character device\)"):
        load_checkpoint("/dev/zero")


def test_load_not_a_torch_file(tmp_path):
    path = tmp_path / "notes.pt"
    path.write_text("these are not weights\n")
    with pytest.raises(CheckpointError, match="cannot be read") as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("keep", [0.5, 0.95, 0.0])
def test_load_truncated_file(saved, keep):
    path, _ = saved
    data = path.read_bytes()
    cut = path.with_name("cut.pt")
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(CheckpointError, match="cannot be read") as info:
        load_checkpoint(cut)
    assert str(cut) in str(info.value)


def test_load_corrupted_bytes(saved):
    path, _ = saved
    data = bytearray(path.read_bytes())
    for i in range(0, 64):  # clobber the zip header
        data[i] ^= 0xFF
    bad = path.with_name("bad.pt")
    bad.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_checkpoint(bad)


def test_load_refuses_pickled_code(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": FORMAT_TAG, "payload": Path("/etc")}, path)  # weights_only refuses classes
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_checkpoint(path)


def test_load_bare_state_dict_is_refused(tmp_path):
    path = tmp_path / "bare.pth"
    torch.save(_model().state_dict(), path)
    with pytest.raises(CheckpointError, match="bare state_dict") as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("overrides, pattern", [
    ({"format": "someone-else"}, "format tag is 'someone-else'"),
    ({"version": FORMAT_VERSION + 1}, f"version {FORMAT_VERSION + 1}, not one this rlenhance knows"),  # a later one
    ({"version": 0}, "version 0, an older format; this rlenhance reads version 3"),
    ({"arch": "TinyNet"}, "arch must be a dict"),
    ({"state_dict": [1, 2]}, "state_dict must map"),
    ({"state_dict": {"w": [1.0]}}, "state_dict must map"),
])
def test_load_wrong_contents(tmp_path, overrides, pattern):
    path = tmp_path / "x.pt"
    torch.save(_raw_payload(_model(), **overrides), path)
    with pytest.raises(CheckpointError, match=pattern) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("missing", ["state_dict", "arch", "extra", "version"])
def test_load_missing_keys(tmp_path, missing):
    path = tmp_path / "x.pt"
    payload = _raw_payload(_model())
    del payload[missing]
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=f"missing key.*{missing}"):
        load_checkpoint(path)


def test_load_non_dict_payload(tmp_path):
    path = tmp_path / "x.pt"
    torch.save([torch.ones(2)], path)
    with pytest.raises(CheckpointError, match="not an rlenhance checkpoint"):
        load_checkpoint(path)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_load_non_finite_names_first_bad_tensor(tmp_path, value):
    state = _model().state_dict()
    state["norm.running_var"][2] = value   # first offending tensor in state_dict order
    state["out.weight"][0, 0, 0, 0] = value
    path = tmp_path / "x.pt"
    torch.save(_raw_payload(_model(), state_dict=state), path)
    with pytest.raises(CheckpointError, match="non-finite") as info:
        load_checkpoint(path)
    message = str(info.value)
    assert "'norm.running_var'" in message and "out.weight" not in message
    assert str(path) in message


def test_load_non_finite_half_precision(tmp_path):
    model = _model().half()
    state = model.state_dict()
    state["conv.bias"][0] = float("nan")
    path = tmp_path / "x.pt"
    torch.save(_raw_payload(model, state_dict=state), path)
    with pytest.raises(CheckpointError, match="conv.bias"):
        load_checkpoint(path)


def test_check_finite_ignores_integer_tensors():
    check_finite({"count": torch.tensor([2**62], dtype=torch.int64), "w": torch.zeros(2)}, source="test")
    with pytest.raises(CheckpointError, match="test: tensor 'w'"):
        check_finite({"w": torch.tensor([0.0, float("nan")])}, source="test")


def test_load_arch_mismatch_shows_both(saved):
    path, _ = saved
    expected = _arch(hidden=8)
    with pytest.raises(CheckpointError, match="architecture mismatch") as info:
        load_checkpoint(path, expected_arch=expected)
    message = str(info.value)
    assert '"hidden": 4' in message and '"hidden": 8' in message and str(path) in message
    with pytest.raises(CheckpointError, match="architecture mismatch"):
        load_checkpoint(path, expected_arch={"class": "OtherNet", "kwargs": {"channels": 3, "hidden": 4}})


# ---------------------------------------------------------------- build_model strictness

def test_build_unknown_class_lists_registry(saved):
    path, _ = saved
    with pytest.raises(CheckpointError, match=r"'TinyNet' is not in the registry; known: \['Other'\]") as info:
        build_model(load_checkpoint(path), {"Other": nn.Identity})
    assert str(path) in str(info.value)


def test_build_bad_kwargs(tmp_path):
    path = tmp_path / "x.pt"
    torch.save(_raw_payload(_model(), arch={"class": "TinyNet", "kwargs": {"depth": 3}}), path)
    with pytest.raises(CheckpointError, match="depth") as info:
        build_model(load_checkpoint(path), REGISTRY)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("edit, pattern", [
    (lambda sd: sd.pop("out.bias"), "Missing key"),
    (lambda sd: sd.__setitem__("extra.weight", torch.zeros(1)), "Unexpected key"),
    (lambda sd: sd.__setitem__("conv.weight", torch.zeros(4, 3, 5, 5)), "size mismatch"),
])
def test_build_is_strict(tmp_path, edit, pattern):
    state = dict(_model().state_dict())
    edit(state)
    path = tmp_path / "x.pt"
    torch.save(_raw_payload(_model(), state_dict=state), path)
    with pytest.raises(CheckpointError, match=pattern) as info:
        build_model(load_checkpoint(path), REGISTRY)
    assert str(path) in str(info.value) and "TinyNet" in str(info.value)


def test_build_detects_arch_that_does_not_fit_weights(tmp_path):
    path = save_checkpoint(tmp_path / "x.pt", model=_model(hidden=4), arch=_arch(hidden=6))
    with pytest.raises(CheckpointError, match="size mismatch"):
        build_model(load_checkpoint(path), REGISTRY)


# ---------------------------------------------------------------- typed metadata (specs)

COND_FIELDS = ["exposure_target", "w_exposure", "w_color", "w_spatial", "w_smooth"]
DENOISE = DenoiseTransition(predict=True, clip=False, steps=5)
SETTING = {"exposure_target": 0.5, "w_exposure": 30.0, "w_color": 5.0, "w_spatial": 1.0, "w_smooth": 5.0}
#: One spec of each kind, as the trainers write them.
SPEC_EXAMPLES = {
    "lowlight-policy": LowLightPolicySpec(
        transition=LowLightTransition(
            action_type="discrete", alpha_table=[-0.1, 0.0, 0.5], alpha_channels=3, channel_coupling=0.0, damping=0.2,
            max_overshoot=None, overshoot_reference=None, cond_fields=COND_FIELDS,
            cond_scale=[0.3, 1.0, 1.0, 1.0, 1.0], cond_offset=[0.5, 30.0, 5.0, 1.0, 5.0], cond_encodings=["linear"] * 5,
            observe_exposure_gap=True, steps=4),
        alpha_mode="argmax", setting=SETTING, max_side=128, conditioned=True,
        setting_ranges={"exposure_target": (0.2, 0.8)}, blur_sigma=None, env_kwargs={"crop": 64}),
    "rollout-policy": RolloutPolicySpec(
        task="completion", env_id="rlenhance/Completion-v0", env_kwargs={"crop": 64, "occlusion": "box"},
        transition=CompletionTransition(predict=True, smooth_iters=20, steps=5),
        block_actions=True, predictor="/models/gated.pt"),
    "supervised": SupervisedSpec(model="gated-pixelrnn", task="completion", channels=3, prefill="diffusion"),
}


@pytest.mark.parametrize("kind", sorted(SPEC_EXAMPLES))
def test_spec_round_trips_through_a_file(tmp_path, kind):
    spec = SPEC_EXAMPLES[kind]
    data = spec.to_dict()
    assert data["kind"] == kind and json.loads(json.dumps(data)) == data  # plain JSON-able data
    assert type(spec).from_dict(data) == spec and SPECS[kind] is type(spec)
    path = save_checkpoint(tmp_path / "m.pt", model=_model(), arch=_arch(), extra={"spec": spec, "step": 3})
    raw = torch.load(path, weights_only=True)
    assert raw["version"] == FORMAT_VERSION == 3 and raw["extra"]["spec"] == data  # stored as the dict
    loaded = load_checkpoint(path, spec=type(spec))
    assert loaded["extra"]["spec"] == spec and type(loaded["extra"]["spec"]) is type(spec)
    assert loaded["extra"]["step"] == 3  # the trainer's own data is left alone


def test_supervised_spec_derives_composite_and_takes_a_network_by_name_or_import_path():
    gated = SPEC_EXAMPLES["supervised"]
    assert gated.composite
    denoiser = SupervisedSpec(model="mrpnet", task="denoise", channels=1, prefill="none")
    assert not denoiser.composite
    assert SupervisedSpec(model="my.nets:Tiny", task="denoise", channels=1, prefill="none").model == "my.nets:Tiny"
    for bad in ("", "my.nets:", ":Tiny", " mrpnet"):
        with pytest.raises(CheckpointError, match="a network's name, or its class's import path"):
            SupervisedSpec(model=bad, task="denoise", channels=1, prefill="none")


@pytest.mark.parametrize("edit, pattern", [
    (lambda d: d.pop("alpha_mode"), r"missing key\(s\) \['alpha_mode'\]"),
    (lambda d: d["transition"].pop("damping"), r"key 'transition': .*missing key\(s\) \['damping'\]"),
    (lambda d: d.update(greedy=True), r"unknown key\(s\) \['greedy'\]"),
    (lambda d: d.update(conditioned=1), "key 'conditioned' must be a bool, got int 1"),
    (lambda d: d.update(transition=[1]), "key 'transition' must be a LowLightTransition dict"),
    (lambda d: d["transition"].update(damping=1.5), "damping 1.5"),
    (lambda d: d["transition"].update(steps=None), "steps is None"),
    (lambda d: d.update(setting={"exposure_target": 0.5}), r"setting lacks the cond_fields \['w_exposure'"),
    (lambda d: d["transition"].update(action_type="binary"), "action_type 'binary'"),
    (lambda d: d.update(max_side=8), "max_side 8"),
    (lambda d: d.update(kind="nope"), r"kind 'nope'; known kinds"),
    (lambda d: d.pop("kind"), r"kind None; known kinds"),
])
def test_load_refuses_a_bad_spec_naming_file_and_key(tmp_path, edit, pattern):
    data = SPEC_EXAMPLES["lowlight-policy"].to_dict()
    edit(data)
    path = tmp_path / "x.pt"
    torch.save(_raw_payload(_model(), extra={"spec": data}), path)
    with pytest.raises(CheckpointError, match=pattern) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


def test_load_refuses_a_checkpoint_of_another_kind(tmp_path):
    path = save_checkpoint(tmp_path / "sup.pt", model=_model(), arch=_arch(),
                           extra={"spec": SPEC_EXAMPLES["supervised"]})
    with pytest.raises(CheckpointError, match=r"sup\.pt is a supervised-model checkpoint .*SupervisedRestorer.*"
                                              r"not a low-light policy checkpoint \(written by experiments.lol_train"):
        load_checkpoint(path, spec=LowLightPolicySpec)
    bare = save_checkpoint(tmp_path / "bare.pt", model=_model(), arch=_arch(), extra={"step": 1})
    with pytest.raises(CheckpointError, match=r"bare\.pt holds no model metadata.*not a denoising / completion"):
        load_checkpoint(bare, spec=RolloutPolicySpec)
    assert load_checkpoint(bare)["extra"] == {"step": 1}  # without spec=, no metadata is fine


def test_metadata_is_written_only_as_a_spec(tmp_path):
    for extra, pattern in (({"spec": SPEC_EXAMPLES["supervised"].to_dict()}, "must be a spec object.*got dict"),):
        with pytest.raises(CheckpointError, match=pattern):
            save_checkpoint(tmp_path / "x.pt", model=_model(), arch=_arch(), extra=extra)
    assert not (tmp_path / "x.pt").exists()
    with pytest.raises(CheckpointError, match=r"^SupervisedSpec: channels 2 \(accepted: 1, 3\)"):
        SupervisedSpec(model="mrpnet", task="denoise", channels=2, prefill="none")
    with pytest.raises(CheckpointError, match="predictor is empty"):  # a denoising policy may have one (a path)
        RolloutPolicySpec(task="denoise", env_id="rlenhance/Denoise-v0", env_kwargs={}, transition=DENOISE,
                          block_actions=False, predictor="")
    with pytest.raises(CheckpointError, match="predictor 'weights/mrpnet.pt' is a relative path.*or a bare file name"):
        RolloutPolicySpec(task="denoise", env_id="rlenhance/Denoise-v0", env_kwargs={}, transition=DENOISE,
                          block_actions=False, predictor="weights/mrpnet.pt")
    with pytest.raises(CheckpointError, match="observe_prediction'] is set without a predictor"):
        RolloutPolicySpec(task="denoise", env_id="rlenhance/Denoise-v0", env_kwargs={"observe_prediction": True},
                          transition=DENOISE, block_actions=False, predictor=None)
    for accepted in ("/runs/sup/checkpoints/best.pt", "mrpnet_denoise.pt"):  # what trainers and shipped files record
        RolloutPolicySpec(task="denoise", env_id="rlenhance/Denoise-v0", env_kwargs={}, transition=DENOISE,
                          block_actions=False, predictor=accepted)
    with pytest.raises(CheckpointError, match="predict False with predictor"):
        RolloutPolicySpec(task="denoise", env_id="rlenhance/Denoise-v0", env_kwargs={},
                          transition=DenoiseTransition(predict=False, clip=False, steps=5), block_actions=False,
                          predictor="mrpnet_denoise.pt")
    with pytest.raises(CheckpointError, match=r"env_kwargs holds \['clip'\].*transition of task 'completion'"):
        RolloutPolicySpec(task="denoise", env_id="rlenhance/Denoise-v0", env_kwargs={"clip": True},
                          transition=SPEC_EXAMPLES["rollout-policy"].transition, block_actions=False, predictor="a.pt")


def test_an_older_format_gets_one_line(tmp_path):
    """Files of format versions 1 and 2 (untyped metadata, specs without transitions) are refused in one line."""
    for version, extra in ((1, {"inference": {"model": "mrpnet", "task": "denoise", "channels": 1}}),
                           (2, {"spec": {"kind": "rollout-policy", "steps": 5}})):
        path = tmp_path / f"v{version}.pt"
        torch.save(_raw_payload(_model(), version=version, extra=extra), path)
        with pytest.raises(CheckpointError) as info:
            load_checkpoint(path)
        message = str(info.value)
        assert "\n" not in message and message.startswith(f"checkpoint {path}: format version {version}, an older "
                                                           "format; this rlenhance reads version 3")


