"""The native PixelRL kernel (rlenhance.ops.native) against the torch path of pixelrl_filter_select.

Tolerances (max abs difference, values in [-0.3, 1.3] as the env's unclipped noisy start):
    shifts, keep, median:   0      (the same float operations / one of the inputs)
    Gaussian, box:          0      (the same sums in the same order, fused multiply-adds where torch's
                                    are, as its AVX2 kernels; 1e-6 if the probe finds no FMA in torch)
    bilateral:              1e-6   (same weights and tap order; the kernel's own exp2, within 2 ulp)
Observed: bilateral <= 5e-7 on both the exact-Gaussian and the lookup-table path.
The torch path is the same function with RLENHANCE_NATIVE=0.
"""

import contextlib
import logging
import os
import re
import shutil
import stat
import subprocess
import warnings

import pytest
import torch
import torch.nn.functional as F

from rlenhance.atomic import atomic_path
from rlenhance.errors import ImageError
from rlenhance.models.policy import PixelActorCritic
from rlenhance.ops import _sorting, bilateral, native, native_build
from rlenhance.ops.actions import PIXELRL_ACTION_TABLE
from rlenhance.ops.bank import pixelrl_filter_bank, pixelrl_filter_select
from rlenhance.ops.select import select_per_pixel
from rlenhance.rollouts import greedy_rollout
from rlenhance.transitions import COND_FIELDS, LowLightTransition

ATOL = 1e-6
N_ACTIONS = len(PIXELRL_ACTION_TABLE)
EXACT_ACTIONS = (0, 1, 2, 5) + ((3, 6, 8) if native._torch_fuses_multiply_add() else ())  # all but bilateral



@pytest.fixture
def native_kernel():
    """Skip the test when the C kernel is unavailable; checked when the test runs, so that collecting
    this file compiles nothing."""
    if not native.available():
        pytest.skip(f"native kernel unavailable: {native.unavailable_reason()}")


needs_native = pytest.mark.usefixtures("native_kernel")


@pytest.fixture
def fresh_library():
    """Forget the process's loaded kernel before and after the test (the env may change in between)."""
    native_build._library.cache_clear()
    yield
    native_build._library.cache_clear()


def torch_select(x, actions, monkeypatch):
    with monkeypatch.context() as patch:
        patch.setenv(native.ENV_SWITCH, "0")
        return pixelrl_filter_select(x, actions)


def noisy(shape, seed, low=-0.3, high=1.3):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=gen) * (high - low) + low


def random_actions(b, h, w, seed):
    return torch.randint(0, N_ACTIONS, (b, 1, h, w), generator=torch.Generator().manual_seed(seed))


def mixed_actions(b, h, w, seed):
    """Image by image: uniform; 90% "keep" (each filter on few pixels: computed at its pixels only);
    60% median (the median computed on whole rows). Uniform already puts the linear filters on
    whole rows (1 in 9 pixels is above the kernel's 1 in 16)."""
    gen = torch.Generator().manual_seed(seed)
    actions = torch.randint(0, N_ACTIONS, (b, 1, h, w), generator=gen)
    favourite = torch.rand(b, 1, h, w, generator=gen)
    actions[1::3] = torch.where(favourite[1::3] < 0.9, 1, actions[1::3])
    actions[2::3] = torch.where(favourite[2::3] < 0.6, 5, actions[2::3])
    return actions


def assert_close_per_action(out, ref, actions, atol=ATOL):
    """Exact at the pixels of the exact actions, within ``atol`` elsewhere."""
    mask = actions.expand_as(out) if actions.shape[1] == 1 else actions
    for k in range(N_ACTIONS):
        chosen = mask == k
        if chosen.any():
            diff = (out[chosen] - ref[chosen]).abs().max().item()
            assert diff <= (0.0 if k in EXACT_ACTIONS else atol), (PIXELRL_ACTION_TABLE[k].name, diff)


@needs_native
@pytest.mark.parametrize("shape", [(1, 1, 7, 9), (3, 3, 33, 40), (3, 1, 24, 31)])
@pytest.mark.parametrize("threads", [1, 2])
def test_random_actions_match_torch_path(shape, threads, monkeypatch):
    b, _, h, w = shape
    x, actions = noisy(shape, seed=sum(shape)), mixed_actions(b, h, w, seed=threads)
    out = native.pixelrl_select_native(x, actions, num_threads=threads, min_pixels_per_thread=1)
    assert out.shape == x.shape and out.dtype == torch.float32
    assert_close_per_action(out, torch_select(x, actions, monkeypatch), actions)
    # and the full bank followed by the per-pixel choice
    assert_close_per_action(out, select_per_pixel(pixelrl_filter_bank(x), actions), actions)


@needs_native
@pytest.mark.parametrize("shape", [(2, 1, 12, 13), (1, 3, 9, 11), (2, 1, 2, 3)])
@pytest.mark.parametrize("k", range(N_ACTIONS))
def test_each_action_everywhere_is_the_filter(shape, k, monkeypatch):
    b, _, h, w = shape
    x = noisy(shape, seed=k)
    actions = torch.full((b, 1, h, w), k)
    out = native.pixelrl_select_native(x, actions)
    assert_close_per_action(out, PIXELRL_ACTION_TABLE[k](x), actions)
    assert_close_per_action(out, torch_select(x, actions, monkeypatch), actions)


@needs_native
def test_known_values():
    x = torch.zeros(1, 1, 5, 5)
    x[0, 0, 2, 2] = 1.0  # an impulse: the median removes it, the box spreads it as 1/25
    median = native.pixelrl_select_native(x, torch.full((1, 1, 5, 5), 5))
    box = native.pixelrl_select_native(x, torch.full((1, 1, 5, 5), 8))
    plus = native.pixelrl_select_native(x, torch.full((1, 1, 5, 5), 2))
    assert torch.equal(median, torch.zeros_like(x))
    assert box[0, 0, 2, 2].item() == pytest.approx(1 / 25, abs=1e-7)
    assert torch.equal(plus, x + torch.tensor(1 / 255, dtype=torch.float32))


@needs_native
@pytest.mark.parametrize("channels", [1, 3])
def test_lookup_table_path_matches_torch_path(channels, monkeypatch):
    # a value range above 1.83 makes sigma_color 0.1 use OpenCV's interpolated table (see
    # bilateral._BILATERAL_EXACT_GAUSSIAN_MAX_ERROR); a flat image counts as range 1
    x = noisy((3, channels, 17, 19), seed=channels, low=-0.6, high=1.6)
    x[1] = 0.25
    assert not bilateral._bilateral_exact(float(x[0].max() - x[0].min()), 0.1, 4096)
    actions = random_actions(3, 17, 19, seed=7)
    out = native.pixelrl_select_native(x, actions)
    assert_close_per_action(out, torch_select(x, actions, monkeypatch), actions)


@needs_native
def test_value_ranges_as_filters_computes_them():
    x = noisy((4, 3, 9, 37), seed=8)
    x[2] = 0.5  # flat: counts as range 1
    lo_hi = torch.empty(4, 2)
    native_build._library().min_max(x.data_ptr(), 4, x[0].numel(), lo_hi.data_ptr())
    assert torch.equal(lo_hi, torch.stack(torch.aminmax(x.view(4, -1), dim=1), 1))
    assert native._ranges(*lo_hi.t().tolist()) == bilateral._value_ranges(x)


@needs_native
def test_large_values_both_tables(monkeypatch):
    # a range of 20 puts both colour sigmas (0.1 and 1.0) on the table path; tolerance relative to the values
    x = noisy((2, 1, 16, 16), seed=3, low=-5.0, high=15.0)
    actions = random_actions(2, 16, 16, seed=3)
    out = native.pixelrl_select_native(x, actions)
    assert_close_per_action(out, torch_select(x, actions, monkeypatch), actions, atol=ATOL * 15)


@needs_native
def test_threads_and_vector_widths_give_identical_values():
    x = noisy((3, 3, 21, 26), seed=11)
    actions = mixed_actions(3, 21, 26, seed=11)
    one = native.pixelrl_select_native(x, actions, num_threads=1, isa="baseline")
    for threads in (2, 3, 64):
        assert torch.equal(native.pixelrl_select_native(x, actions, num_threads=threads, min_pixels_per_thread=1,
                                                        isa="baseline"), one)
    if native.vector_isa() == "avx2":
        assert torch.equal(native.pixelrl_select_native(x, actions, num_threads=2, isa="avx2"), one)
    else:
        with pytest.raises(RuntimeError, match="AVX2"):
            native.pixelrl_select_native(x, actions, isa="avx2")


@needs_native
def test_input_layouts_and_action_dtypes():
    x = noisy((2, 3, 14, 15), seed=5)
    actions = random_actions(2, 14, 15, seed=5)
    ref = native.pixelrl_select_native(x, actions)
    assert torch.equal(native.pixelrl_select_native(x.to(memory_format=torch.channels_last), actions), ref)
    assert torch.equal(native.pixelrl_select_native(x, actions[:, 0].to(torch.int32)), ref)
    assert torch.equal(native.pixelrl_select_native(x, actions.to(torch.uint8)), ref)
    wide = noisy((2, 3, 14, 30), seed=5)
    assert torch.equal(native.pixelrl_select_native(wide[..., ::2], actions),
                       native.pixelrl_select_native(wide[..., ::2].contiguous(), actions))


@needs_native
def test_out_of_range_action_keeps_the_pixel():
    x = noisy((1, 1, 6, 7), seed=2)
    actions = torch.full((1, 1, 6, 7), 5)
    actions[0, 0, 1, 2], actions[0, 0, 4, 4] = N_ACTIONS, -1
    out = native.pixelrl_select_native(x, actions)
    assert out[0, 0, 1, 2] == x[0, 0, 1, 2] and out[0, 0, 4, 4] == x[0, 0, 4, 4]


@needs_native
def test_bad_input_raises():
    x, actions = torch.rand(1, 1, 8, 8), torch.zeros(1, 1, 8, 8, dtype=torch.long)
    with pytest.raises(ImageError, match="float32"):
        native.pixelrl_select_native(x.double(), actions)
    with pytest.raises(ImageError, match=r"\(B, C, H, W\)"):
        native.pixelrl_select_native(x[0], actions)
    with pytest.raises(ValueError, match="actions"):
        native.pixelrl_select_native(x, actions[..., :4])
    with pytest.raises(ValueError, match="actions"):
        native.pixelrl_select_native(x, actions.float())
    with pytest.raises(ValueError, match="isa"):
        native.pixelrl_select_native(x, actions, isa="sse9")
    with pytest.raises(ValueError, match="num_threads"):
        native.pixelrl_select_native(x, actions, num_threads=0)


@needs_native
def test_filter_select_dispatches_to_native(monkeypatch):
    calls = []
    kernel = native.pixelrl_select_native
    monkeypatch.setattr(native, "pixelrl_select_native", lambda *args, **kw: calls.append(1) or kernel(*args, **kw))
    x, actions = noisy((2, 1, 10, 12), seed=1), random_actions(2, 10, 12, seed=1)
    out = pixelrl_filter_select(x, actions)
    assert calls and torch.equal(out, kernel(x, actions))
    # not for float64, a custom table, or where autograd records (the torch path's business)
    pixelrl_filter_select(x.double(), actions)
    pixelrl_filter_select(x, actions.clamp(max=3), PIXELRL_ACTION_TABLE[:4])
    with contextlib.suppress(RuntimeError), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pixelrl_filter_select(x.clone().requires_grad_(), actions)
    assert len(calls) == 1
    with torch.no_grad():
        pixelrl_filter_select(x.clone().requires_grad_(), actions)
    assert len(calls) == 2
    # validation happens before dispatch
    with pytest.raises(ValueError, match=r"\[0, 8\]"):
        pixelrl_filter_select(x, actions + N_ACTIONS)


def test_env_switch_disables_native(monkeypatch):
    monkeypatch.setenv(native.ENV_SWITCH, "0")
    assert not native.available()
    assert native.ENV_SWITCH in native.unavailable_reason()
    assert native.vector_isa() is None
    x, actions = noisy((1, 1, 8, 9), seed=4), random_actions(1, 8, 9, seed=4)
    with pytest.raises(RuntimeError, match="unavailable"):
        native.pixelrl_select_native(x, actions)
    out = pixelrl_filter_select(x, actions)  # the torch path
    assert torch.equal(out[actions.expand_as(out) == 1], x[actions.expand_as(x) == 1])


def test_broken_compiler_falls_back_with_a_reason(monkeypatch, tmp_path, fresh_library):
    if shutil.which("false") is None:
        pytest.skip("no `false` executable to stand in for a broken compiler")
    monkeypatch.setenv("CC", shutil.which("false"))
    monkeypatch.setenv("RLENHANCE_CACHE", str(tmp_path))
    monkeypatch.delenv(native.ENV_SWITCH, raising=False)
    assert not native.available()
    assert "false" in native.unavailable_reason() and "status" in native.unavailable_reason()
    assert not any((tmp_path / "native").glob("*")), "a failed build must leave no file behind"
    x, actions = noisy((1, 1, 8, 9), seed=6), random_actions(1, 8, 9, seed=6)
    assert pixelrl_filter_select(x, actions).shape == x.shape  # the torch path


def test_missing_compiler_gives_a_reason(monkeypatch, tmp_path, fresh_library):
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    monkeypatch.setenv("RLENHANCE_CACHE", str(tmp_path))
    monkeypatch.delenv(native.ENV_SWITCH, raising=False)
    assert not native.available()
    assert "no C compiler" in native.unavailable_reason()


@needs_native
def test_cached_library_is_loaded_without_compiling(monkeypatch, tmp_path, fresh_library):
    built = native_build._library().path
    monkeypatch.setenv("RLENHANCE_CACHE", str(tmp_path))
    (tmp_path / "native").mkdir()
    shutil.copy(built, tmp_path / "native" / built.name)  # same source, flags and compiler: same name
    native_build._library.cache_clear()
    monkeypatch.setattr(native_build, "_compile", lambda *args: pytest.fail("compiled although the library was cached"))
    assert native.available() and native_build._library().path == tmp_path / "native" / built.name


# ---------------------------------------------------------------- a private cache: no one else's code is loaded

#: A library whose constructor runs when it is loaded: it leaves the file $PLANTED_MARKER behind.
PLANTED_C = """#include <stdio.h>
#include <stdlib.h>
__attribute__((constructor)) static void planted(void) {
    FILE *f = fopen(getenv("PLANTED_MARKER"), "w");
    if (f) fclose(f);
}
"""
NOBODY = 65534
REAL_COMPILE = native_build._compile


@pytest.fixture
def planted(tmp_path, monkeypatch, fresh_library):
    """``(cache root, kernel file name, plant(path))``: plant writes a library at ``path`` whose
    constructor leaves ``tmp_path / "ran"`` behind (the proof that it was loaded). The kernel is
    "compiled" by a copy of the one built for this process (the real compiler in the first test)."""
    if not native.available():
        pytest.skip(f"native kernel unavailable: {native.unavailable_reason()}")
    good = native_build._library().path
    name = good.name  # the file name a build with this compiler looks for
    source = tmp_path / "planted.c"
    source.write_text(PLANTED_C)
    built = tmp_path / "planted.so"
    subprocess.run([*native_build._find_compiler(), "-shared", "-fPIC", "-o", str(built), str(source)], check=True,
                   capture_output=True)
    monkeypatch.setenv("PLANTED_MARKER", str(tmp_path / "ran"))
    monkeypatch.setenv("RLENHANCE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(native.ENV_SWITCH, raising=False)
    native_build._library.cache_clear()

    def copy_compile(compiler, target):  # a compiler of the same library, in no time
        with atomic_path(target) as tmp:
            shutil.copy(good, tmp)
            tmp.chmod(0o700)

    monkeypatch.setattr(native_build, "_compile", copy_compile)

    def plant(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(built, path)
        return path
    return tmp_path / "cache", name, plant


def private_kernel(path):
    info = path.stat()
    assert info.st_uid == os.geteuid() and not info.st_mode & 0o022, oct(info.st_mode)
    folder = path.parent.stat()
    assert folder.st_uid == os.geteuid() and stat.S_IMODE(folder.st_mode) == 0o700


def root_only():
    if os.geteuid() != 0:
        pytest.skip("making a file of another user needs root")


def test_the_folders_created_for_the_cache_are_private(planted, monkeypatch):
    cache, name, _ = planted
    monkeypatch.setattr(native_build, "_compile", REAL_COMPILE)  # the linker's file mode follows the umask
    umask = os.umask(0o002)  # a group-writable default
    try:
        assert native.available()
    finally:
        os.umask(umask)
    for folder in (cache, cache / "native"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    private_kernel(cache / "native" / name)


def test_a_library_of_another_user_in_the_cache_is_not_loaded_but_rebuilt(planted, caplog):
    root_only()
    cache, name, plant = planted
    (cache / "native").mkdir(parents=True, mode=0o700)
    target = plant(cache / "native" / name)
    os.chown(target, NOBODY, NOBODY)
    with caplog.at_level(logging.INFO, logger=native.__name__):
        assert native.available()
    assert not (cache.parent / "ran").exists(), "the planted library was loaded"
    assert native_build._library().path == target
    private_kernel(target)
    assert any("belongs to user id 65534" in r.getMessage() for r in native_records(caplog))


@pytest.mark.parametrize("how", ["world-writable folder", "group-writable file", "symbolic link", "hard link"])
def test_a_library_others_could_have_written_is_not_loaded_but_rebuilt(planted, how):
    cache, name, plant = planted
    folder = cache / "native"
    folder.mkdir(parents=True, mode=0o700)
    target = folder / name
    if how == "world-writable folder":
        plant(target)
        folder.chmod(0o777)
    elif how == "group-writable file":
        plant(target).chmod(0o775)
    elif how == "symbolic link":
        target.symlink_to(plant(cache.parent / "elsewhere" / "planted.so"))
    else:
        os.link(plant(cache.parent / "planted-copy.so"), target)
    assert native.available()
    assert not (cache.parent / "ran").exists(), "the planted library was loaded"
    assert native_build._library().path == target and not target.is_symlink()
    private_kernel(target)


def test_a_cache_folder_of_another_user_is_not_used(planted, caplog):
    root_only()
    cache, name, plant = planted
    folder = cache / "native"
    target = plant(folder / name)
    os.chown(folder, NOBODY, NOBODY)
    os.chown(target, NOBODY, NOBODY)
    folder.chmod(0o777)
    with caplog.at_level(logging.INFO, logger=native.__name__):
        assert native.available()  # compiled for this process in a private temporary folder
    assert not (cache.parent / "ran").exists(), "the planted library was loaded"
    assert native_build._library().path.parent != folder and folder.stat().st_uid == NOBODY
    warning = [r.getMessage() for r in native_records(caplog) if r.levelno == logging.WARNING]
    assert len(warning) == 1 and str(folder) in warning[0] and "user id 65534" in warning[0]
    assert "RLENHANCE_CACHE" in warning[0]


def test_per_channel_actions_on_colour_images_take_the_torch_bank():
    """(B, 3, H, W) actions on RGB are not the kernel's input: the dispatcher must not hand them over."""
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(2, 3, 9, 11, generator=gen)
    actions = torch.randint(0, 9, (2, 3, 9, 11), generator=gen)
    out = pixelrl_filter_select(x, actions)
    bank = pixelrl_filter_bank(x)  # (B, K, C, H, W)
    expected = bank.gather(1, actions[:, None]).squeeze(1)
    assert torch.allclose(out, expected, atol=1e-6)


# ---------------------------------------------------------------- build reports, C source, binding


def native_records(caplog):
    return [r for r in caplog.records if r.name == native.__name__]


def test_broken_compiler_is_logged_with_the_fallback(monkeypatch, tmp_path, fresh_library, caplog):
    if shutil.which("false") is None:
        pytest.skip("no `false` executable to stand in for a broken compiler")
    monkeypatch.setenv("CC", shutil.which("false"))
    monkeypatch.setenv("RLENHANCE_CACHE", str(tmp_path))
    monkeypatch.delenv(native.ENV_SWITCH, raising=False)
    with caplog.at_level(logging.DEBUG, logger=native.__name__):
        assert not native.available()
        assert not native.available()  # reported once per process, not per call
    records = native_records(caplog)
    assert [r.levelno for r in records] == [logging.INFO, logging.WARNING]  # compiling, then the fallback
    assert "compiling" in records[0].getMessage()
    assert "torch path" in records[1].getMessage() and native.unavailable_reason() in records[1].getMessage()


def test_missing_compiler_is_logged(monkeypatch, tmp_path, fresh_library, caplog):
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    monkeypatch.setenv("RLENHANCE_CACHE", str(tmp_path))
    monkeypatch.delenv(native.ENV_SWITCH, raising=False)
    with caplog.at_level(logging.DEBUG, logger=native.__name__):
        assert not native.available()
    (record,) = native_records(caplog)
    assert record.levelno == logging.WARNING and "no C compiler" in record.getMessage()


def test_env_switch_is_logged_once(monkeypatch, caplog):
    native_build._log_disabled.cache_clear()
    monkeypatch.setenv(native.ENV_SWITCH, "0")
    with caplog.at_level(logging.DEBUG, logger=native.__name__):
        x, actions = noisy((1, 1, 8, 9), seed=5), random_actions(1, 8, 9, seed=5)
        pixelrl_filter_select(x, actions)
        pixelrl_filter_select(x, actions)
    (record,) = native_records(caplog)
    assert record.levelno == logging.INFO and native.ENV_SWITCH in record.getMessage()
    assert "torch path" in record.getMessage()


@needs_native
def test_cached_library_load_is_logged(monkeypatch, tmp_path, fresh_library, caplog):
    built = native_build._library().path
    monkeypatch.setenv("RLENHANCE_CACHE", str(tmp_path))
    (tmp_path / "native").mkdir()
    shutil.copy(built, tmp_path / "native" / built.name)
    native_build._library.cache_clear()
    with caplog.at_level(logging.DEBUG, logger=native.__name__):
        assert native.available()
    (record,) = native_records(caplog)
    assert record.levelno == logging.DEBUG and str(tmp_path) in record.getMessage()


def test_c_median_network_is_the_pruned_sorting_network():
    """The 5x5 median of csrc/ is written out comparator by comparator: it must be the network the
    torch median is built from (Batcher's odd-even merge sort of 25 values pruned to wire 12)."""
    source = (native_build._SOURCE_DIR / "pixelrl_select_vector.h").read_text(encoding="utf-8")
    body = source.split("static inline vf median25(vf v[WIN * WIN]) {")[1].split("(void)t;")[0]
    network = []
    for line in body.strip().splitlines()[1:]:  # after "vf t;"
        if m := re.fullmatch(r"t = vmin\(v\[(\d+)\], v\[(\d+)\]\); v\[\2\] = vmax\(v\[\1\], v\[\2\]\); v\[\1\] = t;",
                             line.strip()):
            network.append((int(m[1]), int(m[2]), True, True))
        elif m := re.fullmatch(r"v\[(\d+)\] = vmin\(v\[\1\], v\[(\d+)\]\);", line.strip()):
            network.append((int(m[1]), int(m[2]), True, False))
        elif m := re.fullmatch(r"v\[(\d+)\] = vmax\(v\[(\d+)\], v\[\1\]\);", line.strip()):
            network.append((int(m[2]), int(m[1]), False, True))
        else:
            raise AssertionError(f"not a comparator: {line!r}")
    pruned, _ = _sorting._prune(_sorting._sorting_network(25), [12])
    assert tuple(network) == pruned
    assert "return v[12];" in source.split("static inline vf median25")[1].split("}")[0]


def test_kernel_arguments_are_named_and_complete():
    """The kernel's arguments travel as one struct whose fields are all given by name."""
    fields = {name: 0 for name, _ in native._SelectArgs._fields_}
    assert native._SelectArgs(**fields).n_threads == 0
    with pytest.raises(TypeError, match="isa"):
        native._SelectArgs(**{name: value for name, value in fields.items() if name != "isa"})
    with pytest.raises(AttributeError):
        native._SelectArgs(**fields, n_thread=1)


# ---------------------------------------------------------------- the LE curve kernel


def curve_inputs(c=3, map_channels=1, h=23, w=41, steps=5, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(c, h, w, generator=gen)
    maps = torch.rand(steps, map_channels, 5, 7, generator=gen) * 2 - 1
    return x, maps


@needs_native
@pytest.mark.parametrize("map_channels", [1, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.uint8])
def test_curve_threads_vector_widths_and_layouts_give_identical_values(map_channels, dtype):
    x, maps = curve_inputs(map_channels=map_channels)
    x = (x * 255).to(dtype) if dtype == torch.uint8 else x
    hwc = x.permute(1, 2, 0).contiguous().permute(2, 0, 1)  # the (H, W, 3) layout: its own vectorized loops
    isas = ("baseline", "auto") + (("avx2",) if native.vector_isa() == "avx2" else ())
    outs = [native.le_curves_native(source, maps, torch.empty_like(source), num_threads=threads,
                                    min_pixels_per_thread=1, isa=isa)
            for source in (x, hwc) for threads in (1, 3) for isa in isas]
    assert all(torch.equal(outs[0], out) for out in outs[1:])


@needs_native
def test_curve_kernel_reads_and_writes_any_strides():
    """An (H, W, C) layout (a permuted view), a (C, H, W) one and a transposed one give the same values."""
    x, maps = curve_inputs(c=4, map_channels=4, seed=1)
    planar = native.le_curves_native(x, maps, torch.empty_like(x))
    hwc = x.permute(1, 2, 0).contiguous()
    out_hwc = torch.empty_like(hwc)
    native.le_curves_native(hwc.permute(2, 0, 1), maps, out_hwc.permute(2, 0, 1))
    assert torch.equal(out_hwc.permute(2, 0, 1), planar)
    wide = torch.empty(3 * 4 * 23 * 41 + 64)[64:].view(4, 23, 41 * 3)[..., ::3]  # a column stride of 3, offset
    native.le_curves_native(x, maps, wide)
    assert torch.equal(wide, planar)


@needs_native
def test_curve_kernel_bad_arguments_raise():
    x, maps = curve_inputs()
    out = torch.empty_like(x)
    with pytest.raises(ValueError, match="x must be"):
        native.le_curves_native(x[None], maps, out)
    with pytest.raises(ValueError, match="x must be"):
        native.le_curves_native(torch.rand(5, 4, 4), maps, torch.empty(5, 4, 4))
    with pytest.raises(ValueError, match="maps must be"):
        native.le_curves_native(x, maps[:, :, :, :, None], out)
    with pytest.raises(ValueError, match="maps must be"):
        native.le_curves_native(x, maps.expand(-1, 2, -1, -1), out)
    with pytest.raises(ValueError, match="out must be"):
        native.le_curves_native(x, maps, out.to(torch.int16))
    with pytest.raises(ValueError, match="overlaps"):
        native.le_curves_native(x[:, :, 1:], maps, x[:, :, :-1])
    with pytest.raises(ValueError, match="another dtype or strides"):
        native.le_curves_native(x, maps, x.view(torch.int32).view(torch.float32).as_strided(x.shape, (1, 3, 3 * 23)))
    with pytest.raises(ValueError, match="height"):
        native.le_curves_native(x, maps, out, top=1, height=23)
    with pytest.raises(ValueError, match="num_threads"):
        native.le_curves_native(x, maps, out, num_threads=0)
    with pytest.raises(ValueError, match="isa"):
        native.le_curves_native(x, maps, out, isa="avx512")


def test_curve_kernel_unavailable_raises_and_the_op_takes_the_torch_path(monkeypatch):
    from rlenhance.ops import le_curves_upsampled

    monkeypatch.setenv(native.ENV_SWITCH, "0")
    x, maps = curve_inputs()
    with pytest.raises(RuntimeError, match="unavailable"):
        native.le_curves_native(x, maps, torch.empty_like(x))
    out = le_curves_upsampled(x[None], [m[None] for m in maps])
    assert out.shape == (1, *x.shape)


def test_curve_kernel_arguments_are_named_and_complete():
    fields = {name: 0 for name, _ in native._CurvesArgs._fields_}
    assert native._CurvesArgs(**fields).isa == 0
    with pytest.raises(TypeError, match="maps"):
        native._CurvesArgs(**{name: value for name, value in fields.items() if name != "maps"})


# ---------------------------------------------------------------- the area kernel


@needs_native
@pytest.mark.parametrize("shape, size", [((97, 131), (15, 20)), ((7, 5), (7, 1)), ((40, 6), (3, 6)), ((1, 1), (1, 1))])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.uint16, torch.float32])
def test_area_kernel_equals_torch_area_interpolation(shape, size, dtype):
    """Torch's float sums in torch's order: the same values as F.interpolate(mode="area") of the float image."""
    gen = torch.Generator().manual_seed(sum(shape))
    scale = {torch.uint8: 255, torch.uint16: 65535, torch.float32: 1}[dtype]
    hwc = (torch.rand(*shape, 3, generator=gen) * scale).to(dtype)  # an (H, W, 3) array's layout
    floats = hwc.to(torch.float32) / scale if scale > 1 else hwc
    expected = F.interpolate(floats.permute(2, 0, 1)[None].contiguous(), size=size, mode="area")[0]
    for threads in (1, 3):
        out = native.area_downscale_native(hwc.permute(2, 0, 1), size, num_threads=threads, min_pixels_per_thread=1)
        assert out.dtype == torch.float32 and out.is_contiguous() and torch.equal(out, expected)


@needs_native
def test_area_kernel_bad_arguments_raise():
    x = torch.rand(3, 8, 8)
    for bad in [(0, 4), (9, 4), (4,), (4.0, 4)]:
        with pytest.raises(ValueError, match="size"):
            native.area_downscale_native(x, bad)
    with pytest.raises(ValueError, match="x must be"):
        native.area_downscale_native(x.to(torch.int32), (4, 4))
    with pytest.raises(ValueError, match="num_threads"):
        native.area_downscale_native(x, (4, 4), num_threads=0)


# ---------------------------------------------------------------- the low-light rollout kernel


def rollout_policy(*, out_channels=1, gap=True, cond_dim=5, film=True, downscale=4, kernel_size=3,
                   branch_dilations=(3, 2), n_actions=21, width=8, seed=0):
    """A random discrete low-light policy whose actions are far from uniform (a large head gain)."""
    torch.manual_seed(seed)
    policy = PixelActorCritic(in_channels=6 + gap, out_channels=out_channels, n_actions=n_actions, width=width,
                              downscale=downscale, cond_dim=cond_dim, kernel_size=kernel_size,
                              branch_dilations=branch_dilations, cond_film=film, policy_head_gain=3.0).eval()
    if film:  # FiLM starts as the identity: give it an effect
        torch.nn.init.normal_(policy.film.weight, std=0.5)
        torch.nn.init.normal_(policy.film.bias, std=0.5)
    return policy


def _rollout(policy, image, cond, *, steps, alpha_table, damping=0.0, channel_coupling=0.0, exposure_target=None,
             **kwargs):
    """greedy_rollout with the transition of these values (the exposure-gap plane when a target is given)."""
    transition = LowLightTransition(
        action_type="discrete" if policy.n_actions else "continuous", alpha_table=alpha_table.tolist(),
        alpha_channels=policy.out_channels, channel_coupling=channel_coupling, damping=damping, max_overshoot=None,
        overshoot_reference=None, cond_fields=COND_FIELDS, cond_scale=(1.0,) * 5, cond_offset=(0.0,) * 5,
        cond_encodings=("linear",) * 5, observe_exposure_gap=exposure_target is not None, steps=steps)
    return greedy_rollout(policy, image, cond, transition=transition, exposure_target=exposure_target, **kwargs)


def both_rollouts(policy, image, cond, monkeypatch, **kwargs):
    """greedy_rollout through the native kernel (checked to be called) and through torch's ops."""
    calls = []
    kernel = native.lowlight_rollout_native
    with monkeypatch.context() as patch:
        patch.setattr(native, "lowlight_rollout_native", lambda *a, **k: calls.append(1) or kernel(*a, **k))
        fused = _rollout(policy, image, cond, **kwargs)
    assert calls, "the native kernel was not used"
    with monkeypatch.context() as patch:
        patch.setenv(native.ENV_SWITCH, "0")
        reference = _rollout(policy, image, cond, **kwargs)
    return fused, reference


def assert_rollouts_close(fused, reference, atol=2e-6):
    (out, maps), (ref_out, ref_maps) = fused, reference
    assert len(maps) == len(ref_maps) and all(m.shape == r.shape for m, r in zip(maps, ref_maps))
    assert max(float((m - r).abs().max()) for m, r in zip(maps, ref_maps)) <= atol
    assert out.shape == ref_out.shape and float((out - ref_out).abs().max()) <= atol


@needs_native
@pytest.mark.parametrize("config", [
    dict(),  # the shipped layout: one alpha map, the exposure-gap plane, cond planes and FiLM
    dict(out_channels=3, gap=False, film=False, downscale=2),
    dict(out_channels=3, downscale=4),  # FiLM on three alpha maps
    dict(cond_dim=0, film=False, downscale=1, kernel_size=5),
    dict(branch_dilations=(), film=False, downscale=16),
    dict(width=32),  # the shipped width: the kernel keeps a position's outputs in registers
])
def test_native_rollout_matches_the_torch_ops(config, monkeypatch):
    policy = rollout_policy(**config)
    gen = torch.Generator().manual_seed(1)
    s = policy.downscale  # at most 13 x 17 working blocks (NATIVE_ROLLOUT_MAX_BLOCKS), partial ones at the edges
    image = torch.rand(2, 3, min(37, 13 * s - 1), min(53, 17 * s - 1), generator=gen) * 0.3
    cond = torch.randn(2, policy.cond_dim, generator=gen) if policy.cond_dim else None
    target = torch.tensor([0.4, 0.6]) if policy.in_channels == 7 else None
    kwargs = dict(steps=4, alpha_table=torch.linspace(-0.5, 1.0, 21), exposure_target=target)
    assert_rollouts_close(*both_rollouts(policy, image, cond, monkeypatch, **kwargs))
    # the most probable alpha (the policy's logits are far apart: rounding picks no other action)
    fused, reference = both_rollouts(policy, image, cond, monkeypatch, alpha_mode="argmax", **kwargs)
    assert_rollouts_close(fused, reference)
    expected = _rollout(policy, image, cond, **kwargs)[1]
    assert not any(torch.allclose(m, r, atol=1e-3) for m, r in zip(fused[1], expected))  # not the mean's
    # ReLLIE's damping and channel coupling (of three alpha maps)
    coupling = 0.9 if policy.out_channels == 3 else 0.0
    assert_rollouts_close(*both_rollouts(policy, image, cond, monkeypatch, damping=0.2, channel_coupling=coupling,
                                         **kwargs))


@needs_native
def test_native_rollout_reads_any_layout_and_images_smaller_than_a_block(monkeypatch):
    policy = rollout_policy(out_channels=3)
    kwargs = dict(steps=3, alpha_table=torch.linspace(-0.5, 1.0, 21), exposure_target=0.45)
    hwc = torch.rand(2, 23, 31, 3, generator=torch.Generator().manual_seed(4)) * 0.3  # a (B, H, W, 3) array's layout
    assert_rollouts_close(*both_rollouts(policy, hwc.permute(0, 3, 1, 2), torch.zeros(2, 5), monkeypatch, **kwargs))
    tiny = torch.rand(1, 3, 3, 2) * 0.3  # one partial 4 x 4 block
    assert_rollouts_close(*both_rollouts(policy, tiny, torch.zeros(1, 5), monkeypatch, **kwargs))


@needs_native
def test_native_rollout_caps_the_mean_as_the_torch_ops(monkeypatch):
    """A limit that one image reaches and the other does not: the capped steps agree too."""
    policy = rollout_policy()
    image = torch.cat([torch.full((1, 3, 30, 41), 0.05), torch.full((1, 3, 30, 41), 0.3)])
    image = (image + 0.05 * torch.rand(2, 3, 30, 41, generator=torch.Generator().manual_seed(2))).clamp(0, 1)
    cond = torch.zeros(2, 5)
    kwargs = dict(steps=5, alpha_table=torch.linspace(0.0, 1.0, 21), exposure_target=0.5)
    free = _rollout(policy, image, cond, **kwargs)[0].mean(dim=(1, 2, 3))
    limit = torch.stack([free[0] + 0.1, image[1].mean() + 0.01])
    fused, reference = both_rollouts(policy, image, cond, monkeypatch, mean_limit=limit, **kwargs)
    assert_rollouts_close(fused, reference)
    assert float(fused[0][1].mean()) == pytest.approx(float(limit[1]), abs=1e-5)
    for shared in (float(limit[1]), limit[1]):  # one limit for the batch: a number, a 0-dim tensor
        assert_rollouts_close(*both_rollouts(policy, image, cond, monkeypatch, mean_limit=shared, **kwargs))


@needs_native
@pytest.mark.parametrize("width", [8, 32])
def test_native_rollout_vector_widths_give_identical_values(width):
    policy = rollout_policy(width=width)
    layers = [(conv.weight, conv.bias, conv.dilation[0], relu, film)
              for conv, relu, film in policy.action_layers(torch.zeros(1, 5))]
    image = torch.rand(1, 3, 29, 30, generator=torch.Generator().manual_seed(3))
    isas = ("baseline", "auto") + (("avx2",) if native.vector_isa() == "avx2" else ())
    runs = [native.lowlight_rollout_native(image, layers, steps=3, scale=4, table=torch.linspace(0, 1, 21),
                                           cond=torch.zeros(1, 5), target=torch.tensor([0.5]), isa=isa)
            for isa in isas]
    assert all(torch.equal(runs[0][1], maps) and torch.equal(runs[0][0], out) for out, maps in runs[1:])


@pytest.mark.parametrize("case", ["continuous", "conv_gru", "film_without_branch", "float64", "big_map",
                                  "empty_batch"])
def test_rollouts_the_kernel_does_not_describe_take_the_torch_ops(case, monkeypatch):
    policy = rollout_policy(film=case == "film_without_branch", branch_dilations=() if case == "film_without_branch"
                            else (3, 2), downscale=1 if case == "big_map" else 4)
    if case == "continuous":
        policy = PixelActorCritic(in_channels=7, out_channels=1, n_actions=None, width=8, downscale=4, cond_dim=5)
    if case == "conv_gru":
        policy = PixelActorCritic(in_channels=7, out_channels=1, n_actions=21, width=8, downscale=4, cond_dim=5,
                                  conv_gru=True)
    # 20 x 20: at downscale 1 ("big_map") 400 working blocks, above NATIVE_ROLLOUT_MAX_BLOCKS
    batch = 0 if case == "empty_batch" else 1
    image = torch.rand(batch, 3, 20, 20, dtype=torch.float64 if case == "float64" else torch.float32)
    monkeypatch.setattr(native, "lowlight_rollout_native", lambda *a, **k: pytest.fail("the kernel was called"))
    out, maps = _rollout(policy.to(image.dtype), image, torch.zeros(batch, 5, dtype=image.dtype), steps=2,
                               alpha_table=torch.linspace(0, 1, 21, dtype=image.dtype), exposure_target=0.5)
    assert out.shape == image.shape and len(maps) == 2


@pytest.mark.parametrize("case", ["short_table", "coupling_above_1", "float64_policy", "limit_of_another_batch"])
def test_arguments_the_torch_ops_refuse_are_refused_by_them(case, monkeypatch):
    """The kernel is not called where the torch path raises: the torch path's error is the one seen."""
    policy = rollout_policy().to(torch.float64 if case == "float64_policy" else torch.float32)
    kwargs = dict(steps=2, alpha_table=torch.linspace(0, 1, 7 if case == "short_table" else 21), exposure_target=0.5,
                  channel_coupling=1.5 if case == "coupling_above_1" else 0.0,
                  mean_limit=torch.full((3,), 0.5) if case == "limit_of_another_batch" else None)
    monkeypatch.setattr(native, "lowlight_rollout_native", lambda *a, **k: pytest.fail("the kernel was called"))
    with pytest.raises((RuntimeError, ValueError)) as refused:
        _rollout(policy, torch.rand(1, 3, 20, 20), torch.zeros(1, 5), **kwargs)
    assert "kernel" not in str(refused.value)


@needs_native
def test_rollout_kernel_bad_arguments_raise():
    policy = rollout_policy()
    layers = [(conv.weight, conv.bias, conv.dilation[0], relu, film)
              for conv, relu, film in policy.action_layers(torch.zeros(1, 5))]
    image, table = torch.rand(1, 3, 16, 16), torch.linspace(0, 1, 21)
    run = lambda image, layers, **k: native.lowlight_rollout_native(  # noqa: E731
        image, layers, steps=2, scale=4, **{"table": table, "cond": torch.zeros(1, 5), "target": torch.ones(1), **k})
    with pytest.raises(ValueError, match="image must be"):
        run(image[:, :2], layers)
    with pytest.raises(ValueError, match="image must be"):
        run(image.double(), layers)
    with pytest.raises(ValueError, match="limit must be"):
        run(image, layers, limit=torch.ones(2))
    with pytest.raises(ValueError, match="at least one layer"):
        run(image, [])
    with pytest.raises(ValueError, match="kernel"):
        run(image, [layers[0], (torch.zeros(8, 8, 5, 5), torch.zeros(8), 1, True, None), *layers[1:]])
    with pytest.raises(RuntimeError, match="invalid arguments"):  # the first layer reads 12 planes, not 11
        run(image, layers, target=None)
    with pytest.raises(ValueError, match="isa"):
        run(image, layers, isa="avx512")
    with pytest.raises(ValueError, match="groups"):  # 21 logits are not 1 or 3 groups of 10
        run(image, layers, table=torch.linspace(0, 1, 10))
    with pytest.raises(ValueError, match="table must be"):
        run(image, layers, table=table[:, None])
    if native.vector_isa() != "avx2":
        with pytest.raises(RuntimeError, match="AVX2"):
            run(image, layers, isa="avx2")


def test_rollout_kernel_arguments_are_named_and_complete():
    fields = {name: 0 for name, _ in native._RolloutArgs._fields_}
    assert native._RolloutArgs(**fields).isa == 0
    with pytest.raises(TypeError, match="layers"):
        native._RolloutArgs(**{name: value for name, value in fields.items() if name != "layers"})
