"""ONNX export of the low-light :class:`~rlenhance.Enhancer`: ``rlenhance export``.

:class:`LowLightGraph` is everything :meth:`Enhancer.enhance_array <rlenhance.Enhancer.enhance_array>` does,
in torch ops with no data-dependent branch, so that it traces into one ONNX graph (``torch.onnx.export``,
TorchScript path, dynamic height and width): input ``image``, float32 (1, 3, H, W) RGB in [0, 1]; output
``enhanced``, the same shape. The graph holds the area resize to the working image, the policy's greedy
rollout (unrolled over the fixed steps), the curve steps at full resolution and the clean stage.

The setting is fixed at export time. :func:`export_lowlight` checks the written graph with onnxruntime against
the Enhancer before it keeps the file, and refuses (:class:`ExportError`) what the graph cannot express.

Example:
    >>> path = export_lowlight(Enhancer(device="cpu"), "lowlight.onnx")   # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rlenhance.atomic import atomic_path
from rlenhance.enhance import Enhancer
from rlenhance.ops.clean import clean_tensor

__all__ = ["INPUT", "OPSET", "OUTPUT", "ExportError", "LowLightGraph", "area_downscale", "denoiser_refused",
           "export_lowlight"]

#: The ONNX opset the graphs are written in.
OPSET = 17
#: The graph's input and output names.
INPUT, OUTPUT = "image", "enhanced"
#: The share of 8-bit levels within 1 of the Enhancer's that the check of a written graph requires.
MATCH = 0.999
#: The check's images: (height, width), smaller and larger than a working side, in both orientations.
CHECK_SIZES = ((37, 53), (300, 170), (400, 600))


class ExportError(ValueError):
    """A model or setting the ONNX graph cannot express; the message is one line naming it."""


def denoiser_refused(denoiser: str | Path) -> ExportError:
    """The refusal of a ``denoiser`` network after the curves (not part of the graph)."""
    return ExportError(f"--denoiser {denoiser}: a denoising network after the curves is not part of the exported "
                       "graph; export without it (the clean stage, --denoise, is)")


def area_downscale(image: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    """``F.adaptive_avg_pool2d(image, size)`` (the area resize of the Enhancer's working image) for a
    ``size`` (int64 (2,)) known only when the graph runs: each axis in turn, the window sums taken as
    differences of running sums. ``image``: float (B, C, H, W)."""
    return _pool_axis(_pool_axis(image, -1, size[1]), -2, size[0])


def _pool_axis(x: torch.Tensor, dim: int, n: torch.Tensor) -> torch.Tensor:
    """``x`` averaged along ``dim`` over ``n`` windows: window ``i`` spans ``floor(i L / n)`` to
    ``ceil((i + 1) L / n)`` (L: the axis' length), torch's adaptive pooling windows."""
    length = torch._shape_as_tensor(x)[dim]
    i = torch.arange(n)
    start, end = i * length // n, ((i + 1) * length + n - 1) // n
    sums = torch.cumsum(x, dim)
    sums = torch.cat([torch.zeros_like(sums.narrow(dim, 0, 1)), sums], dim)
    shape = [1] * x.dim()
    shape[dim] = -1
    return (sums.index_select(dim, end) - sums.index_select(dim, start)) / (end - start).to(x.dtype).view(shape)


class LowLightGraph(nn.Module):
    """An :class:`~rlenhance.Enhancer` with one setting, as a module that traces into an ONNX graph.

    Args:
        enhancer: the Enhancer (its checkpoint, steps, working side, alpha mode, cap and clean strength).
        setting: the setting of :meth:`Enhancer.cond <rlenhance.Enhancer.cond>` (``exposure``,
            ``w_exposure``, ...; None or omitted: the checkpoint's).

    Raises:
        ExportError: the Enhancer has a ``denoiser``.
        ValueError: a bad setting (as :meth:`Enhancer.cond` raises it).

    Shape:
        float32 (1, 3, H, W) RGB in [0, 1] -> the same.
    """

    def __init__(self, enhancer: Enhancer, **setting: float | None):
        super().__init__()
        if enhancer.denoiser is not None:
            raise denoiser_refused(enhancer.denoiser.path)
        if enhancer.device.type != "cpu":
            raise ValueError(f"the Enhancer runs on {enhancer.device}; build it with device='cpu' to export it")
        self.enhancer = enhancer
        self.policy = enhancer.policy.cpu()  # registered: its weights are the graph's
        self.register_buffer("cond", enhancer.cond(**setting).cpu())
        self.knee = enhancer.knee(setting.get("exposure"))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        small = area_downscale(image, torch.tensor([self.enhancer.max_side] * 2))
        curved, curve = image, self.enhancer.transition.family.curve
        for alpha in self.enhancer._rollout(small, self.cond):
            up = F.interpolate(alpha, size=image.shape[-2:], mode="bilinear", align_corners=False)
            curved = curve(curved, up).clamp(0.0, 1.0)
        return clean_tensor(image, curved, self.enhancer.denoise, knee=self.knee)


def export_lowlight(enhancer: Enhancer, path: str | Path, *, overwrite: bool = False,
                    **setting: float | None) -> tuple[Path, float]:
    """Write ``enhancer`` with ``setting`` as one ONNX graph (:class:`LowLightGraph`) to ``path``, after
    checking it: onnxruntime's output on :data:`CHECK_SIZES` synthetic dark images has at least
    :data:`MATCH` of its 8-bit levels within 1 of :meth:`Enhancer.enhance_array`'s. The file is written
    atomically (nothing is left at ``path`` when the export fails).

    Returns:
        ``(path, share)``: the file, and the lowest share of levels within 1 over the checked images.

    Raises:
        ExportError: what the graph cannot express (one line): a denoiser, a policy the tracer cannot
            follow, a graph that does not reproduce the Enhancer.
        ModuleNotFoundError: onnx or onnxruntime are not installed (the message says how to install them).
        FileExistsError: ``path`` exists and ``overwrite`` is False.
    """
    onnx, ort = _onnx_modules()
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass --overwrite to replace it")
    graph = LowLightGraph(enhancer, **setting).eval()
    side = enhancer.max_side
    example = torch.rand(1, 3, side + 37, 2 * side + 11, generator=torch.Generator().manual_seed(0))
    buffer = io.BytesIO()
    try:
        with torch.no_grad(), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")  # the tracer's notes on constant shapes and checks
            torch.onnx.export(graph, (example,), buffer, input_names=[INPUT], output_names=[OUTPUT],
                              dynamic_axes={INPUT: {2: "height", 3: "width"}, OUTPUT: {2: "height", 3: "width"}},
                              opset_version=OPSET, dynamo=False)
    except Exception as exc:  # the tracer's or a symbolic's message, whatever the op
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"{enhancer.path.name}: the policy does not trace into an ONNX graph ({first})") from exc
    model = buffer.getvalue()
    onnx.checker.check_model(onnx.load_from_string(model))
    options = ort.SessionOptions()
    options.log_severity_level = 4  # a failing run raises; its log would repeat it in colour
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    share = 1.0
    for size in CHECK_SIZES:
        try:
            share = min(share, _agreement(enhancer, session, size, setting))
        except ort.capi.onnxruntime_pybind11_state.Fail as exc:  # a shape the trace fixed, met at another size
            first = str(exc).strip().splitlines()[0]
            raise ExportError(f"{enhancer.path.name}: the traced graph fails on a {size[1]}x{size[0]} image, the "
                              f"policy has a step the graph cannot express ({first})") from exc
    if share < MATCH:
        raise ExportError(f"{enhancer.path.name}: the traced graph does not reproduce the Enhancer ({share:.2%} of "
                          f"8-bit levels within 1, below {MATCH:.1%}): the policy has a step the graph cannot express")
    with atomic_path(path, replace=overwrite) as tmp:
        tmp.write_bytes(model)
    return path, share


def _agreement(enhancer: Enhancer, session, size: tuple[int, int], setting: dict) -> float:
    """The share of 8-bit levels within 1 of each other in the Enhancer's result and the graph's for a
    synthetic dark image of ``size`` (a lit corner, texture and noise; seeded)."""
    rng = np.random.default_rng(size[0] * 10_000 + size[1])
    height, width = size
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    light = 0.04 + 0.3 * np.exp(-((yy - 0.2) ** 2 + (xx - 0.3) ** 2) * 6)
    image = light[..., None] * (0.7 + 0.3 * rng.random((1, 1, 3))) * (1 + 0.2 * np.sin(40 * xx))[..., None]
    image = np.clip(image + rng.normal(0, 0.01, image.shape), 0, 1)
    samples = np.rint(image * 255).astype(np.uint8)
    expected = enhancer.enhance_array(samples, dtype=np.uint8, **setting).image
    unit = (samples.astype(np.float32) / np.float32(255)).transpose(2, 0, 1)[None]
    got = session.run([OUTPUT], {INPUT: unit})[0][0].transpose(1, 2, 0)
    levels = np.rint(np.clip(got, 0, 1) * 255).astype(np.int16)
    return float(np.mean(np.abs(levels - expected) <= 1))


def _onnx_modules():
    """``(onnx, onnxruntime)``, or ModuleNotFoundError saying how to install them."""
    try:
        import onnx
        import onnxruntime
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(f"the ONNX export needs onnx and onnxruntime ({exc.name} is missing): "
                                  "pip install 'rlenhance[export]'") from exc
    return onnx, onnxruntime
