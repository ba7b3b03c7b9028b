"""The registry of methods: one entry per (task, name), found, loaded and checked by it alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlenhance import registry
from rlenhance.errors import CheckpointError, ImageError
from rlenhance.io import float_to_levels
from rlenhance.plugins import path_of
from rlenhance.restore import Restorer

SHIPPED = [m for m in registry.methods(learned=True) if registry.missing(m) is None]
CLASSICAL = [m for m in registry.methods(family="Classical") if registry.missing(m) is None]


def test_every_method_has_one_entry_and_a_known_task_and_family():
    keys = [(m.task, m.name) for m in registry.methods()]
    assert len(keys) == len(set(keys)) == len(registry.METHODS)
    assert {m.task for m in registry.methods()} == set(registry.TASKS)
    assert {m.family for m in registry.methods()} <= set(registry.FAMILIES)
    from rlenhance.checkpoint import SPECS

    assert {m.loads for m in registry.methods(learned=True)} == set(SPECS)
    assert all(m.loads == "" for m in registry.methods(family="Classical"))
    for task, name in registry.DEFAULTS.items():
        assert registry.find(task, name).family != "Classical"
    for method in registry.methods(learned=True):
        assert method.loader and set(method.weights) <= set(method.train), method
        assert bool(method.unshipped) == (set(method.weights) != set(method.train)), method  # said why, if not all


def test_an_unknown_method_or_setting_is_refused_naming_the_accepted_ones():
    with pytest.raises(ValueError, match="completion: no method 'dncnn'; accepted: a3c, unet"):
        registry.find("completion", "dncnn")
    with pytest.raises(ValueError, match=r"takes no setting 'sigma' \(accepted: tile, ensemble\)"):
        registry.load("completion", "unet", sigma=25)
    with pytest.raises(ValueError, match="task: expected one of"):
        registry.methods("inpaint")
    with pytest.raises(ValueError, match="classical: it takes no checkpoint"):
        registry.load("completion", "telea", "some.pt")


def test_a_missing_default_names_the_callers_option_and_the_training_command(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "WEIGHTS", tmp_path)
    method = registry.find("completion", "unet")
    with pytest.raises(CheckpointError) as python_caller:
        registry.load("completion", "unet")
    assert "pass checkpoint=PATH" in str(python_caller.value) and "--checkpoint" not in str(python_caller.value)
    assert "experiments.supervised_train --preset unet-completion" in str(python_caller.value)
    with pytest.raises(CheckpointError, match=r"pass --checkpoint PATH"):
        registry.default_weights(method, option="--checkpoint PATH")
    assert registry.missing(method) == "its checkpoint unet_completion.pt is not installed"


@pytest.mark.parametrize("task, name, planes, predictor, trainer", [
    ("denoise", "a3c", 1, "FFDNet", "experiments.denoise_train --sigma"),
    ("denoise", "sac", 1, "FFDNet", "experiments.denoise_train --agent sac --sigma"),
    ("denoise", "rse", 3, "FFDNet", "experiments.rse_train --preset rse-denoise-color"),
    ("completion", "a3c", 3, "the U-Net", "experiments.completion_train --predictor"),
])
def test_a_policy_that_does_not_ship_says_why_in_one_line_with_the_command_that_trains_one(task, name, planes,
                                                                                           predictor, trainer):
    """The recipes whose policy took the predictor's output everywhere ship nothing: without a checkpoint
    the error says so, with the figure, the training command and the option that passes one."""
    method = registry.find(task, name)
    with pytest.raises(CheckpointError) as info:
        registry.load(task, name, planes=planes, option="--checkpoint PATH")
    text = str(info.value)
    assert "\n" not in text and f"{name} " in text and "ships" in text and "is not installed" not in text
    assert f"took {predictor}'s output at every pixel and step" in text and f"0.00 dB over {predictor}" in text
    assert f"python -m {trainer}" in text and text.endswith("pass --checkpoint PATH")
    assert not registry.ships(method) or planes not in method.weights
    if not registry.ships(method):
        assert registry.missing(method).startswith("no checkpoint ships: the policy of its recipe took")


def test_the_colour_pixelrl_policies_still_ship():
    for name in ("a3c", "sac"):
        method = registry.find("denoise", name)
        assert registry.ships(method) and registry.default_weights(method, 3).name == f"{name}_denoise_color.pt"


@pytest.mark.parametrize("method", SHIPPED, ids=lambda m: f"{m.task}-{m.name}")
def test_each_shipped_weight_is_recognised_as_its_method(method):
    for name in method.weights.values():
        path = registry.WEIGHTS / name
        if path.is_file():
            assert registry.kind_of(method.task, path) == method.name
            others = [task for task in registry.TASKS if task != method.task]
            assert all(registry.kind_of(task, path) is None for task in others)


class TinyDenoiser(torch.nn.Module):
    """A user's network, named by import path (``tests.rlenhance.test_registry:TinyDenoiser``)."""

    def __init__(self, channels: int = 1, width: int = 4):
        super().__init__()
        self.conv = torch.nn.Conv2d(channels, channels, 3, padding=1)
        self.width = width

    def arch(self) -> dict:
        return {"class": path_of(type(self)), "kwargs": {"channels": self.conv.in_channels, "width": self.width}}

    def forward(self, x):
        return x - self.conv(x)


def test_a_checkpoint_names_its_method_and_no_other(tmp_path):
    """kind_of reads the method from what the file records: a network no method of the task loads has
    none (a PixelRNN denoiser is not an "mrpnet"), a network named by import path is its own method, which
    loads it; the import path is imported only when it is the spec's model."""
    from rlenhance.checkpoint import SupervisedSpec, save_checkpoint
    from rlenhance.models.pixelrnn import PixelRNN

    spec = SupervisedSpec(model="pixelrnn", task="denoise", channels=1, prefill="none")
    net = PixelRNN(1, width=4)
    other = save_checkpoint(tmp_path / "pixelrnn.pt", model=net, arch=net.arch(), extra={"spec": spec})
    assert [registry.kind_of(task, other) for task in registry.TASKS] == [None, None, None]
    net, name = TinyDenoiser(), path_of(TinyDenoiser)
    path = save_checkpoint(tmp_path / "tiny.pt", model=net, arch=net.arch(),
                           extra={"spec": SupervisedSpec(model=name, task="denoise", channels=1, prefill="none")})
    assert [registry.kind_of(task, path) for task in registry.TASKS] == [None, name, None]
    method = registry.find("denoise", name)
    assert (method.family, method.loads, registry.ships(method)) == ("Supervised", "supervised", False)
    image = np.random.default_rng(0).uniform(0, 1, (12, 10, 1)).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(image).permute(2, 0, 1)[None]).clamp(0, 1)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(registry.load("denoise", name, path, device="cpu").restore(image), expected, atol=1e-6)
    lying = save_checkpoint(tmp_path / "lying.pt", model=net, arch=net.arch(),
                            extra={"spec": SupervisedSpec(model="mrpnet", task="denoise", channels=1, prefill="none")})
    with pytest.raises(CheckpointError, match="model 'mrpnet' with class 'tests.rlenhance.test_registry:TinyDenoiser'"):
        registry.load("denoise", "mrpnet", lying, device="cpu")


def test_register_method_adds_one_entry_that_every_reader_finds():
    method = registry.Method("denoise", "tiny-test", "Tiny", "Supervised", "rlenhance.restore:SupervisedRestorer",
                             loads="supervised")
    try:
        assert registry.register_method(method) is method
        assert registry.find("denoise", "tiny-test") is method and "tiny-test" in registry.names("denoise")
        assert registry.kind_of("denoise", registry.WEIGHTS / "mrpnet_denoise.pt") == "mrpnet"
        with pytest.raises(ValueError, match="method 'denoise/tiny-test' is registered already"):
            registry.register_method(registry.Method("denoise", "tiny-test", "Other", "Supervised", "a:b"))
    finally:
        registry.METHODS._entries.pop("denoise/tiny-test", None)  # the table of this process only
    with pytest.raises(ValueError, match=r"loader 'nowhere'"):
        registry.register_method(registry.Method("denoise", "bad", "Bad", "RL", "nowhere"))


@pytest.mark.parametrize("method", SHIPPED, ids=lambda m: f"{m.task}-{m.name}")
def test_each_shipped_model_loads_as_a_restorer_of_one_signature(method):
    planes = 3 if (registry.WEIGHTS / method.weights.get(3, "")).is_file() else 1
    restorer = registry.load(method.task, method.name, planes=planes, device="cpu")
    assert isinstance(restorer, Restorer)
    image = np.full((20, 24, planes), 0.4, np.float32)
    image[::2] = 0.6
    mask = None
    if method.task == "completion":
        mask = np.zeros((20, 24), bool)
        mask[6:12, 8:14] = True
        image[mask] = 0.0
    out = restorer.restore(image, mask=mask)
    assert out.dtype == np.float32 and out.shape[:2] == image.shape[:2] and 0 <= out.min() and out.max() <= 1
    if mask is not None:
        np.testing.assert_array_equal(out[~mask], image[~mask])
        with pytest.raises(ImageError, match="mask"):
            restorer.restore(image)


@pytest.mark.parametrize("method", SHIPPED + CLASSICAL, ids=lambda m: f"{m.task}-{m.name}")
def test_each_method_takes_samples_and_gives_the_levels_of_its_float_result(method):
    """restore(uint8 samples, dtype=np.uint8) (what the commands run: the tiled models then read and
    write a tile at a time) is exactly the saved file of restore(float image): the levels
    save_image writes of the float result. On 3 x 2 tiles where the method tiles."""
    planes = 3 if method.family == "Classical" or (registry.WEIGHTS / method.weights.get(3, "")).is_file() else 1
    settings = {"tile": 32} if "tile" in method.settings else {}
    restorer = registry.load(method.task, method.name, planes=planes, device="cpu", **settings)
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:70, 0:90] / 90.0
    clean = 0.3 + 0.4 * np.sin(5 * x + 3 * y)[..., None] * np.linspace(1.0, 0.6, planes)
    samples = np.rint(np.clip(clean + rng.normal(0, 0.06, clean.shape), 0, 1) * 255).astype(np.uint8)
    mask = None
    if method.task == "completion":
        mask = np.zeros(samples.shape[:2], bool)
        mask[20:41, 30:52] = True
        samples[mask] = 0
    expected = float_to_levels(restorer.restore(samples.astype(np.float32) / np.float32(255), mask=mask))
    out = restorer.restore(samples, mask=mask, dtype=np.uint8)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, expected)
    with pytest.raises(ValueError, match="dtype"):
        restorer.restore(samples, mask=mask, dtype=np.float64)


def test_classical_methods_take_the_mask_only_where_their_task_has_one():
    telea = registry.load("completion", "telea")
    image = np.full((16, 16, 3), 0.5, np.float32)
    mask = np.zeros((16, 16), bool)
    mask[4:8, 4:8] = True
    assert telea.restore(image, mask=mask).shape == image.shape
    with pytest.raises(ImageError, match="required"):
        telea.restore(image)
    median = registry.load("denoise", "median", sigma=15)
    with pytest.raises(ImageError, match="takes none"):
        median.restore(image, mask=mask)
    assert median.restore(image).shape == image.shape


def test_methods_copy_and_pickle_as_their_entry():
    import copy
    import pickle

    method = registry.find("denoise", "ffdnet")
    assert copy.deepcopy(method) is method and pickle.loads(pickle.dumps(method)) is method


@pytest.mark.parametrize("net", [None, dict(downscale=2, block_actions=True, conv_gru=True), dict(downscale=2)],
                         ids=["recipe", "block-actions-gru", "downscaled-per-pixel"])
def test_the_rl_completion_policy_equals_the_envs_greedy_rollout(tmp_path, net):
    """The library's PolicyCompleter (no env) gives the output of the env's own transition (an untrained
    policy of the completion recipe, over the shipped U-Net; random policies acting per pixel or per
    block, with a ConvGRU state carried over the steps)."""
    from tests.recipes import recipe_policy
    from tests.rlenhance.test_denoisers import policy_checkpoint
    from tests.rollouts import env_restore

    if net is None:
        path = recipe_policy(tmp_path / "policy.pt", "a3c_completion")
    else:
        path = policy_checkpoint(tmp_path / "policy.pt", 3, task="completion", steps=3, **net)
    rng = np.random.default_rng(1)
    image = rng.random((41, 47, 3)).astype(np.float32)  # odd sizes: blocks cropped at the border
    mask = np.zeros((41, 47), bool)
    mask[10:22, 14:30] = True
    occluded = image * ~mask[..., None]
    completer = registry.load("completion", "a3c", path, device="cpu")
    if net is not None:
        assert completer.block_actions == bool(net.get("block_actions"))
    ours = completer.restore(occluded, mask=mask)
    np.testing.assert_allclose(ours, env_restore(path, occluded, mask), atol=1e-6)
