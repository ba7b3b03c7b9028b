"""rlenhance.checkpoint.read_metadata: a checkpoint's dict without torch, as safe as weights_only=True."""

from __future__ import annotations

import json
import os
import pickle
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn

from rlenhance.checkpoint import (
    SupervisedSpec,
    TensorStub,
    load_checkpoint,
    read_metadata,
    read_torch_file,
    save_checkpoint,
)
from rlenhance.checkpoint.files import _read_spec
from rlenhance.errors import CheckpointError

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "rlenhance" / "weights").glob("*.pt"))


def stub_of(tensor: torch.Tensor) -> TensorStub:
    return TensorStub(shape=tuple(tensor.shape), dtype=str(tensor.dtype).removeprefix("torch."))


def stubbed(value):
    """``value`` (a loaded checkpoint's extra) with its tensors as read_metadata gives them."""
    if isinstance(value, torch.Tensor):
        return stub_of(value)
    if isinstance(value, dict):
        return type(value)((k, stubbed(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return type(value)(stubbed(v) for v in value)
    return value


def zip_with_pickle(path: Path, data: bytes) -> Path:
    """A torch.save-style archive whose data.pkl is ``data``."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", data)
        archive.writestr("archive/version", "3\n")
    return path


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_file_reads_as_load_checkpoint_reads_it(path):
    meta = read_metadata(path)
    loaded = load_checkpoint(path)
    assert {k: meta[k] for k in ("format", "version", "arch")} == {k: loaded[k] for k in ("format", "version", "arch")}
    assert meta["state_dict"] == {name: stub_of(t) for name, t in loaded["state_dict"].items()}
    source = f"checkpoint {path}"
    parsed = _read_spec(meta["extra"], source)
    assert parsed["spec"] == loaded["extra"]["spec"]
    assert parsed == loaded["extra"]


def test_tensors_inside_extra_are_stubs_and_the_rest_is_kept(tmp_path):
    """A trainer's last.pt: an optimiser state (tensors, tuples, None, bools) in extra."""
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    optimiser = torch.optim.Adam(net.parameters())
    net(torch.rand(2, 1, 5, 5)).sum().backward()
    optimiser.step()
    spec = SupervisedSpec(model="mrpnet", task="denoise", channels=1, prefill="none")
    extra = {"spec": spec, "optimizer": optimiser.state_dict(), "step": 3, "seen": {"a", "b"}, "blob": b"\x00\xff",
             "half": torch.zeros(2, 3, dtype=torch.float16)}
    path = save_checkpoint(tmp_path / "last.pt", model=net, arch={"class": "Net", "kwargs": {}}, extra=extra)
    meta = read_metadata(path)
    loaded = load_checkpoint(path)
    assert meta["extra"]["spec"] == spec.to_dict()
    assert {k: v for k, v in meta["extra"].items() if k != "spec"} == \
        stubbed({k: v for k, v in loaded["extra"].items() if k != "spec"})
    assert meta["state_dict"]["1.num_batches_tracked"] == TensorStub(shape=(), dtype="int64")
    assert meta["extra"]["half"] == TensorStub(shape=(2, 3), dtype="float16")


class RunsACommand:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_pickle_that_would_run_code_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "ran"
    payload = pickle.dumps({"format": "rlenhance-checkpoint", "extra": RunsACommand(marker)}, protocol=2)
    path = zip_with_pickle(tmp_path / "evil.pt", payload)
    with pytest.raises(CheckpointError, match=r"evil\.pt: .*other than tensors.*it names (posix|nt|os)\.system"):
        read_metadata(path)
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="objects other than tensors"):  # torch's weights_only refuses it too
        load_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize("payload", [
    pickle.dumps(getattr, protocol=2),                                        # a builtin that is not a container
    b"\x80\x02cbuiltins\neval\nX\x05\x00\x00\x001 + 1\x85R.",               # eval("1 + 1")
    b"\x80\x02ctorch\nload\n.",                                              # a torch function
    b"\x80\x02X\x03\x00\x00\x00not\x85Q.",                                    # a persistent id of no storage
], ids=["getattr", "eval", "torch.load", "persistent-id"])
def test_only_the_globals_of_tensors_and_containers_are_allowed(tmp_path, payload):
    with pytest.raises(CheckpointError, match="objects other than tensors"):
        read_metadata(zip_with_pickle(tmp_path / "odd.pt", payload))


def test_broken_files_are_refused_with_the_file_named(tmp_path):
    whole = (ROOT / "rlenhance" / "weights" / "mrpnet_denoise_color.pt").read_bytes()
    for size in (len(whole) // 2, 10):
        (tmp_path / "cut.pt").write_bytes(whole[:size])
        with pytest.raises(CheckpointError, match=r"cut\.pt: cannot be read as a torch weights file \(truncated or "
                                                  r"corrupt\): BadZipFile"):
            read_metadata(tmp_path / "cut.pt")
    with pytest.raises(CheckpointError, match=r"missing\.pt: no such file"):
        read_metadata(tmp_path / "missing.pt")
    (tmp_path / "image.pt").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(20))
    with pytest.raises(CheckpointError, match=r"image\.pt: cannot be read as a torch weights file: it is a PNG image"):
        read_metadata(tmp_path / "image.pt")
    with pytest.raises(CheckpointError, match=r"empty\.pt: .*no <name>/data\.pkl"):
        with zipfile.ZipFile(tmp_path / "empty.pt", "w") as archive:
            archive.writestr("archive/version", "3\n")
        read_metadata(tmp_path / "empty.pt")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match=r"list\.pt: not an rlenhance checkpoint \(holds a list"):
        read_metadata(tmp_path / "list.pt")


def test_a_file_in_torchs_legacy_format_reads_as_torch_load_reads_it(tmp_path):
    net = nn.Conv2d(1, 2, 3)
    payload = {"format": "rlenhance-checkpoint", "state_dict": net.state_dict(), "extra": {"step": 3}}
    torch.save(payload, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    assert read_metadata(tmp_path / "legacy.pt") == stubbed(torch.load(tmp_path / "legacy.pt", weights_only=True))


# --- hostile files: sizes declared but not held ---------------------------------------------------
class ZeroBytes:
    """Pickles as ``bytearray(n)``: n zero bytes built from a few bytes of pickle."""

    def __init__(self, n: int):
        self.n = n

    def __reduce__(self):
        return bytearray, (self.n,)


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_a_bytearray_larger_than_the_file_is_refused_before_it_is_allocated(tmp_path, legacy, peak_memory):
    for n in (2**26, 2**40):  # 64 MiB, and 1 TiB (that no machine could allocate)
        path = tmp_path / "bomb.pt"
        torch.save({"format": "rlenhance-checkpoint", "x": ZeroBytes(n)}, path,
                   _use_new_zipfile_serialization=not legacy)
        for read in (read_metadata, load_checkpoint, read_torch_file):
            with peak_memory() as peak, pytest.raises(
                    CheckpointError, match=rf"bomb\.pt: its pickle declares a bytearray of {n:,} bytes, more than the "
                                           rf"file's {path.stat().st_size:,}"):
                read(path)
            assert peak.bytes < 2**24


def test_a_zip_member_that_inflates_past_the_file_is_refused_before_it_is_read(tmp_path, peak_memory):
    path = tmp_path / "zipbomb.pt"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:  # 64 MiB of zeros in ~64 KB
        archive.writestr("archive/data.pkl", pickle.dumps(bytes(2**26), protocol=2))
        archive.writestr("archive/version", "3\n")
    assert path.stat().st_size < 2**17
    for read in (read_metadata, load_checkpoint):
        with peak_memory() as peak, pytest.raises(
                CheckpointError, match=r"zipbomb\.pt: member 'archive/data\.pkl' declares 67,108,9\d\d bytes "
                                       r"uncompressed, more than the [\d,]+ it can hold \(torch\.save stores its "
                                       r"records uncompressed"):
            read(path)
        assert peak.bytes < 2**24


def test_a_pickled_length_past_the_end_of_the_data_is_refused_before_it_is_allocated(tmp_path):
    payload = b"\x80\x05\x96" + struct.pack("<Q", 2**40) + b"abc."  # BYTEARRAY8 of 1 TiB, 3 bytes given
    path = zip_with_pickle(tmp_path / "long.pt", payload)
    for read in (read_metadata, load_checkpoint):
        with pytest.raises(CheckpointError, match=r"long\.pt: cannot be read as a torch weights file \(truncated or "
                                                  r"corrupt\): ValueError: expected 1099511627776 bytes"):
            read(path)


def test_legacy_storages_larger_than_the_rest_of_the_file_are_refused_before_they_are_allocated(tmp_path):
    whole = tmp_path / "whole.pt"
    torch.save({"w": torch.zeros(2**20)}, whole, _use_new_zipfile_serialization=False)  # 4 MiB of float32
    cut = tmp_path / "cut.pt"
    cut.write_bytes(whole.read_bytes()[:4096])
    with pytest.raises(CheckpointError, match=r"cut\.pt: its storages declare 4,194,312 bytes, and the file holds "
                                              r"[\d,]+ after its pickles"):
        read_torch_file(cut)
    assert read_metadata(whole) == {"w": TensorStub(shape=(2**20,), dtype="float32")}


def test_containers_nested_absurdly_are_refused(tmp_path):
    shared: list = [0]
    for _ in range(40):  # 2**40 leaves once expanded, as json.dumps of arch would
        shared = [shared, shared]
    path = tmp_path / "shared.pt"
    torch.save({"format": "rlenhance-checkpoint", "arch": {"class": "X", "kwargs": {"a": shared}}}, path)
    with pytest.raises(CheckpointError, match=r"shared\.pt: its pickle of \d+ opcodes builds more than [\d,]+ objects"):
        load_checkpoint(path)
    deep = zip_with_pickle(tmp_path / "deep.pt", b"\x80\x02" + b"]" * 100_000 + b"a" * 99_999 + b".")
    with pytest.raises(CheckpointError, match=r"deep\.pt: holds containers nested more than 100 deep"):
        load_checkpoint(deep)


def test_a_failure_without_a_message_is_still_explained(tmp_path, monkeypatch):
    def out_of_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(torch, "load", out_of_memory)
    with pytest.raises(CheckpointError, match=r"\(truncated or corrupt\): MemoryError: it asks for more memory than "
                                              r"there is$"):
        read_torch_file(SHIPPED[0])


def test_read_metadata_imports_no_torch():
    code = (
        "import json, sys\n"
        "from rlenhance.checkpoint import read_metadata\n"
        f"meta = read_metadata({str(SHIPPED[0])!r})\n"
        "print(json.dumps({'torch': 'torch' in sys.modules, 'format': meta['format'],\n"
        "                  'models': sorted(m for m in sys.modules if m.startswith('rlenhance.models'))}))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"torch": False, "format": "rlenhance-checkpoint", "models": []}

