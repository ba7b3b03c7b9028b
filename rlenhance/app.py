"""The rlenhance web app: try every shipped model on your own photos, in a browser.

Run it with ``rlenhance app`` (needs ``pip install 'rlenhance[app]'``); ``streamlit run
rlenhance/app.py -- [--checkpoint PATH] [--device D] [--max-pixels N]`` runs the same page.

Four tabs: Enhance, Denoise, Complete and Compare (RL vs supervised vs classical, PSNR / SSIM against a
reference); after an RL method, "What the agent did" shows its actions (:mod:`rlenhance.trace`). A thin page:
widgets -> one call to :mod:`rlenhance.app_support` or the library -> images. Models are loaded once per server
(``st.cache_resource``); results are cached per upload and setting (``st.cache_data``).
"""

from __future__ import annotations

import hashlib
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from rlenhance import app_support as kit
from rlenhance.data.occluded import find_hole
from rlenhance.enhance import Enhancer
from rlenhance.errors import CheckpointError, ImageError
from rlenhance.restore import HOLE_THRESHOLD
from rlenhance.runtime import flush_denormals
from rlenhance.trace import ActionTrace, legend_image, step_pictures
from rlenhance.transitions import PREDICT_ACTION

flush_denormals()  # each run of the page, before its torch ops (runtime.flush_denormals)

#: The kinds of model the Denoise and Complete tabs offer, in order.
FAMILIES = ("RL", "Supervised", "Classical")
#: Errors a bad upload, mask or model file raises; shown in the page, which keeps running.
USER_ERRORS = (ImageError, CheckpointError, ValueError)
_TASK_LABELS = {"lowlight": "Low light", "denoise": "Denoise", "completion": "Complete"}
_HOLE_SHAPES = {"One rectangle": "box", "Any shape (several holes)": "free"}
#: Width of the action maps of "What the agent did", in pixels.
_ACTION_WIDTH = 192


@dataclass(frozen=True)
class Upload:
    """An uploaded (or sample) file: its name, bytes and their SHA-256 (the cache key)."""

    name: str
    data: bytes
    digest: str

    @classmethod
    def of(cls, name: str, data: bytes) -> Upload:
        return cls(name, data, hashlib.sha256(data).hexdigest())


#: ASCII punctuation: the characters CommonMark lets a backslash escape.
_PUNCTUATION = re.compile(r"[!-/:-@\[-`{-~]")


def _literal(text: str) -> str:
    """Markdown that shows ``text`` as written: every ASCII punctuation character backslash-escaped
    (CommonMark), line breaks as spaces. For what a user controls, such as an upload's file name and
    the messages naming it: ``**x**``, ``[a](url)``, ``:red[x]`` or ``$x$`` are not rendered."""
    return _PUNCTUATION.sub(r"\\\g<0>", " ".join(text.splitlines()))


# Cached models and results


@st.cache_resource(show_spinner="Loading the low-light model…")
def _enhancer(checkpoint: str | None, device: str, steps: int | None) -> Enhancer:
    return Enhancer(checkpoint, device=device, steps=steps)


@st.cache_resource(show_spinner=False)
def _knobs(checkpoint: str | None, device: str) -> kit.EnhanceKnobs:
    return kit.enhance_knobs(_enhancer(checkpoint, device, None))


@st.cache_resource(show_spinner="Loading the model…")
def _model(task: str, key: str, device: str, checkpoint: str | None, ensemble: int = 1) -> Any:
    if (task, key) == kit.ENHANCE_METHOD:  # the Enhance tab's policy, loaded once
        return _enhancer(checkpoint, device, None)
    return kit.load_model(kit.find_method(task, key), device=device, ensemble=ensemble)


@st.cache_resource(show_spinner=False)
def _missing(task: str, key: str) -> str | None:
    return kit.method_missing(kit.find_method(task, key))


@st.cache_data(show_spinner=False)
def _sample(task: str) -> tuple[str, bytes, bytes]:
    return kit.sample_photo(task)


@st.cache_data(max_entries=24, show_spinner=False)
def _work(digest: str, name: str, task: str, max_pixels: int, _data: bytes) -> tuple[np.ndarray, tuple[int, int], str]:
    """The work image of an upload (see :func:`rlenhance.app_support.work_image`), its full size and how."""
    image = kit.decode_image(_data, name, max_pixels=max_pixels)
    work, how = kit.work_image(image, task)
    return work, image.shape[:2], how


@st.cache_data(max_entries=48, show_spinner=False)
def _enhanced(digest: str, checkpoint: str | None, device: str, steps: int, setting: tuple,
              _image: np.ndarray) -> kit.EnhanceView:
    return kit.enhance_view(_enhancer(checkpoint, device, steps), _image, dict(setting))


@st.cache_data(max_entries=48, show_spinner=False)
def _enhance_actions(digest: str, checkpoint: str | None, device: str, steps: int, setting: tuple,
                     _image: np.ndarray) -> ActionTrace:
    return _enhancer(checkpoint, device, steps).action_trace(_image, **dict(setting))


@st.cache_data(max_entries=64, show_spinner=False)
def _restored(task: str, key: str, device: str, checkpoint: str | None, inputs: tuple, sigma: float,
              setting: tuple, _image: np.ndarray, _mask: np.ndarray | None,
              ensemble: int = 1) -> tuple[np.ndarray, ActionTrace | None, float]:
    """One method on one work image, what its agent did (RL methods; else None) and the time;
    ``inputs`` identifies ``_image`` and ``_mask`` (the cache key)."""
    method = kit.find_method(task, key)
    model = _model(task, key, device, checkpoint if (task, key) == kit.ENHANCE_METHOD else None, ensemble)
    start = time.perf_counter()
    out, trace = kit.restore_traced(method, model, _image, mask=_mask, sigma=sigma, setting=dict(setting))
    return out, trace, time.perf_counter() - start


@st.cache_data(max_entries=2, show_spinner=False)
def _full_png(key: tuple, _make: Callable[[], np.ndarray]) -> bytes:
    """The full-size result as PNG bytes; ``key`` identifies what ``_make`` computes."""
    return kit.png_bytes(_make())


# Shared widgets


def _uploads(label: str, key: str, task: str, *, multiple: bool,
             sample_note: str) -> tuple[list[Upload], Upload | None]:
    """The uploader and its "use a sample" box: ``(uploads, sample reference or None)``."""
    files = st.file_uploader(label, type=list(kit.UPLOAD_TYPES), accept_multiple_files=multiple, key=f"{key}_files")
    files = [f for f in (files if multiple else [files]) if f is not None]
    uploads = [Upload.of(f.name, f.getvalue()) for f in files]
    if not uploads and st.checkbox(f"No photo at hand? Use a sample ({sample_note})", key=f"{key}_sample"):
        name, data, reference = _sample(task)
        return [Upload.of(name, data)], Upload.of(f"{Path(name).stem}_reference.png", reference)
    return uploads, None


def _method_picker(task: str, key: str) -> tuple[kit.Method, int]:
    """The method chosen, and its self-ensemble size (1 where it offers none)."""
    family = st.radio("Kind of model", [f for f in FAMILIES if kit.methods_for(task, f)], horizontal=True,
                      key=f"{key}_family")
    methods = kit.methods_for(task, family)
    method = st.selectbox(f"{family} method", methods, format_func=lambda m: m.label, key=f"{key}_method_{family}")
    if method.note:
        st.caption(method.note)
    ensemble = 1
    if len(method.ensembles) > 1:
        ensemble = st.select_slider(
            "Self-ensemble", method.ensembles, 1, format_func="x{}".format, key=f"{key}_ensemble",
            help="the mean of the network over this many flips and quarter turns of the photo: a little more "
                 "quality, this many times the time")
    return method, ensemble


def _named(method: kit.Method, ensemble: int, *, key: bool = False) -> str:
    """The method's label (``key``: its key, for file names), with its self-ensemble size when it has one."""
    name, mark = (method.key, "_x") if key else (method.label, " x")
    return name + (f"{mark}{ensemble}" if ensemble > 1 else "")


def _size(hw: tuple[int, int]) -> str:
    return f"{hw[1]}×{hw[0]}"


def _work_note(work: np.ndarray, full_hw: tuple[int, int], how: str) -> str:
    if how == "downscaled":
        return f"{_size(full_hw)} photo, shown at {_size(work.shape[:2])}"
    if how == "crop":
        return f"100% centre crop {_size(work.shape[:2])} of the {_size(full_hw)} photo"
    return _size(full_hw)


def _downloads(upload: Upload, suffix: str, result: np.ndarray | bytes, how: str, full_hw: tuple[int, int],
               key: tuple, make_full: Callable[[], np.ndarray], *, refused: str | None = None) -> None:
    """Download of the result: directly when the work image is the photo, else the preview now and
    the full-size result on request (computed once, cached)."""
    stem = Path(upload.name).stem
    png = result if isinstance(result, bytes) else kit.png_bytes(result)
    widget = hashlib.sha1(repr(key).encode()).hexdigest()[:16]
    if how == "full":
        st.download_button(f"Download the result (PNG, {_size(full_hw)})", png, file_name=f"{stem}_{suffix}.png",
                           mime="image/png", key=f"download_{widget}")
        return
    what = "preview" if how == "downscaled" else "crop"
    left, right = st.columns(2)
    with left:
        st.download_button(f"Download this {what} (PNG)", png, file_name=f"{stem}_{suffix}_{what}.png",
                           mime="image/png", key=f"download_{widget}")
    with right:
        if refused:
            st.caption(refused)
            return
        flag = f"full_{widget}"
        if st.session_state.get(flag) or st.button(f"Compute the full-size result ({_size(full_hw)})",
                                                   key=f"compute_{widget}"):
            st.session_state[flag] = True
            with st.spinner(f"Computing the {_size(full_hw)} result…"):
                try:
                    data = _full_png(key, make_full)
                except USER_ERRORS as exc:
                    st.error(_literal(str(exc)))
                    return
            st.download_button(f"Download the full-size result (PNG, {_size(full_hw)})", data,
                               file_name=f"{stem}_{suffix}.png", mime="image/png", key=f"download_full_{widget}")


def _caption(*parts: str, scores: dict[str, float] | None = None) -> str:
    """``parts`` and the ``scores`` ("PSNR 28.10 dB", "SSIM 0.81"), joined by " · "."""
    shown = [p for p in parts if p] + [f"{k} {v:.2f}{' dB' if k == 'PSNR' else ''}" for k, v in (scores or {}).items()]
    return " · ".join(shown)


def _mask_widgets(key: str) -> tuple[str, float, str, Upload | None]:
    """The hole's source: ``(source, threshold, shape, mask upload)``; source is "auto" or "upload"."""
    source = st.radio("Hole", ("Find it (near-black pixels)", "Upload a mask (white = missing)"), horizontal=True,
                      key=f"{key}_mask_source")
    if source.startswith("Find"):
        threshold = st.slider("Darkness threshold", 0.0, 0.2, float(HOLE_THRESHOLD), step=0.01, key=f"{key}_threshold",
                              help="pixels within this distance of black (max over R, G, B) are hole candidates")
        shape = st.radio("Hole shape", tuple(_HOLE_SHAPES), horizontal=True, key=f"{key}_shape")
        return "auto", threshold, _HOLE_SHAPES[shape], None
    file = st.file_uploader("Mask (white = missing, same size as the photo)", type=list(kit.UPLOAD_TYPES),
                            key=f"{key}_mask_file")
    return "upload", HOLE_THRESHOLD, "box", (Upload.of(file.name, file.getvalue()) if file is not None else None)


def _hole(image: np.ndarray, source: str, threshold: float, shape: str, mask_upload: Upload | None,
          max_pixels: int, *, warn: bool = True) -> np.ndarray | None:
    """The hole of ``image`` (bool (H, W)) from the mask widgets; None when a mask is still to upload.
    ``warn``: show why the finder is unsure of a hole it found."""
    if source == "auto":
        hole = find_hole(image, threshold=threshold, shape=shape)
        if warn and hole.doubt is not None and hole.mask.any():
            st.warning(f"The hole found may be wrong: {hole.doubt}. Upload its mask to be sure.")
        return hole.mask
    if mask_upload is None:
        return None
    return kit.read_mask(mask_upload.data, mask_upload.name, image.shape[:2], max_pixels=max_pixels)


def _actions(trace: ActionTrace | None, size: tuple[int, int], label: str) -> None:
    """What an RL method's agent did (nothing for other methods): its action at every pixel and step,
    colour-coded, and how often it took each one."""
    if trace is None:
        return
    where = "the hole's pixels" if trace.region is not None else "the pixels"
    predict = " 'predict' takes the supervised predictor's pixel." if PREDICT_ACTION in trace.names else ""
    with st.expander(f"What the agent of {label} did: its action at every pixel and step"):
        pictures, captions = step_pictures(trace, (round(_ACTION_WIDTH * size[0] / size[1]), _ACTION_WIDTH))
        st.image(pictures, caption=captions)
        st.caption(f"How often it took each action (share of {where} over all steps).{predict}")
        st.image(legend_image([trace]), output_format="PNG")


# Tabs


def enhance_tab(opts: Any) -> None:
    """Low light: several photos, the model's knobs, before / after, the agent's steps, downloads."""
    try:
        knobs = _knobs(opts.checkpoint, opts.device)
    except USER_ERRORS as exc:
        st.error(f"The low-light model could not be loaded: {_literal(str(exc))}")
        return
    st.markdown("Brighten dark photos with the RL curve policy: at every step it picks a curve "
                "`x + α·x·(1 − x)` for every pixel. Drag the sliders: the result follows.")
    uploads, _ = _uploads("Photos (PNG, JPEG, BMP or TIFF; several at once if you like)", "enhance", "lowlight",
                          multiple=True, sample_note="scikit-image's astronaut, darkened")
    knob_col, steps_col, view_col = st.columns([2, 1, 1])
    setting: dict[str, float] = {}
    with knob_col:
        for knob in knobs.sliders:
            if knob.log:
                setting[knob.name] = st.select_slider(knob.label, knob.stops(), knob.default, format_func="{:g}".format,
                                                      key=f"enhance_{knob.name}",
                                                      help=f"trained range {knob.low:g}–{knob.high:g} (log scale)")
                continue
            step = 0.01 if knob.name == "exposure" else float(f"{(knob.high - knob.low) / 100:.1g}")
            setting[knob.name] = st.slider(knob.label, knob.low, knob.high, knob.default, step=step,
                                           key=f"enhance_{knob.name}",
                                           help=f"trained range {knob.low:g}–{knob.high:g}")
        weights = {k: v for k, v in knobs.fixed.items() if k != "exposure"}
        if not knobs.conditioned:
            st.caption("This model was trained at one setting, so it has no setting sliders: "
                       + ", ".join(f"{k} {v:g}" for k, v in knobs.fixed.items()) + ".")
        elif weights:
            st.caption("This model was trained with fixed reward weights ("
                       + ", ".join(f"{k.removeprefix('w_')} {v:g}" for k, v in weights.items())
                       + "), so it has no weight sliders.")
    with steps_col:
        steps = st.slider(knobs.steps.label, int(knobs.steps.low), int(knobs.steps.high), int(knobs.steps.default),
                          key="enhance_steps", help=f"curve steps the policy takes (trained for {knobs.steps.default})")
    with view_col:
        view = st.radio("View", ("Side by side", "Split"), horizontal=True, key="enhance_view")
        split = st.slider("Split position", 0, 100, 50, key="enhance_split") if view == "Split" else None
    if not uploads:
        st.info("Upload one or more photos to start.")
        return
    key_setting = tuple(sorted(setting.items()))
    for index, upload in enumerate(uploads):
        st.markdown(f"#### {_literal(upload.name)}")
        try:
            work, full_hw, how = _work(upload.digest, upload.name, "lowlight", opts.max_pixels, upload.data)
            result = _enhanced(upload.digest, opts.checkpoint, opts.device, steps, key_setting, work)
        except USER_ERRORS as exc:
            st.error(_literal(str(exc)))
            continue
        after = f"After: mean brightness {result.mean_after:.2f} ({1000 * result.seconds:.0f} ms)"
        if split is not None:
            st.image(kit.split_view(work, result.image, split / 100), output_format="PNG",
                     caption=f"Before ◀ ▶ after · {_work_note(work, full_hw, how)} · mean brightness "
                             f"{result.mean_before:.2f} → {result.mean_after:.2f}")
        else:
            before_col, after_col = st.columns(2)
            before_col.image(kit.to_uint8(work), output_format="PNG",
                             caption=f"Before: mean brightness {result.mean_before:.2f} · "
                                     f"{_work_note(work, full_hw, how)}")
            after_col.image(result.png, caption=after)
        with st.expander("What the agent did, step by step"):
            st.caption("The curve parameter α the agent chose for every pixel at each step (`x + α·x·(1 − x)`: "
                       "α > 0 brightens, α < 0 darkens), each map stretched from its smallest α (black) to its "
                       "largest (white):")
            st.image(result.alpha, caption=result.alpha_captions)
            st.caption("The photo after each step, at the resolution the policy works at:")
            st.image(result.steps, caption=[f"after step {k}" for k in range(1, len(result.steps) + 1)])
        _actions(_enhance_actions(upload.digest, opts.checkpoint, opts.device, steps, key_setting, work),
                 work.shape[:2], "the RL curve policy")

        def make_full(upload: Upload = upload) -> np.ndarray:
            image = kit.decode_image(upload.data, upload.name, max_pixels=opts.max_pixels)
            return _enhancer(opts.checkpoint, opts.device, steps).enhance(image, **setting)

        _downloads(upload, "enhanced", result.png, how, full_hw,
                   ("enhance", index, upload.digest, opts.checkpoint, steps, key_setting), make_full)


def denoise_tab(opts: Any) -> None:
    """Denoise: one photo, optional synthetic noise, RL / supervised / classical."""
    st.markdown("Remove noise. The shipped models were trained on gray images with noise σ = 25 (0–255 scale; "
                "FFDNet: any level of 0–75, the one it estimates in the photo); colour photos are denoised "
                "channel by channel (FFDNet: in opponent colour planes). Noise is judged at 100%: large photos "
                f"show a centre crop of {kit.DENOISE_CROP} px.")
    uploads, sample = _uploads("Photo", "denoise", "denoise", multiple=False,
                               sample_note="scikit-image's coffee, clean: noise is added")
    noise_col, model_col = st.columns(2)
    with noise_col:
        add_noise = st.checkbox("Add synthetic noise (my photo is clean; it becomes the reference)",
                                key="denoise_add") or sample is not None
        sigma = float(st.slider("Noise level σ (0–255)", 5, 75, 25, step=5, key="denoise_sigma",
                                help="the noise added to a clean photo, and the level the classical filters are "
                                     "tuned for"))
    with model_col:
        method, ensemble = _method_picker("denoise", "denoise")
    if not uploads:
        st.info("Upload a photo to start.")
        return
    upload = uploads[0]
    try:
        work, full_hw, how = _work(upload.digest, upload.name, "denoise", opts.max_pixels, upload.data)
    except USER_ERRORS as exc:
        st.error(_literal(str(exc)))
        return
    clean = work if add_noise else None
    noisy = kit.noisy_copy(work, sigma) if add_noise else work
    missing = _missing("denoise", method.key)
    if missing:
        st.warning(f"{method.label} is not available here: {missing}")
        return
    try:
        with st.spinner(f"Denoising with {method.label}…"):
            out, trace, seconds = _restored("denoise", method.key, opts.device, None,
                                            (upload.digest, add_noise, sigma if add_noise else None), sigma, (), noisy,
                                            None, ensemble)
    except USER_ERRORS as exc:
        st.error(_literal(str(exc)))
        return
    left, right = st.columns(2)
    noisy_scores, out_scores = kit.quality(noisy, clean), kit.quality(out, clean)
    shown = f"Noisy (σ {sigma:g})" if add_noise else "Input"
    left.image(kit.to_uint8(noisy), output_format="PNG",
               caption=_caption(shown, _work_note(work, full_hw, how), scores=noisy_scores))
    right.image(kit.to_uint8(out), output_format="PNG",
                caption=_caption(f"{_named(method, ensemble)} ({seconds:.1f} s)", scores=out_scores))
    _actions(trace, work.shape[:2], method.label)

    def make_full() -> np.ndarray:
        image = kit.decode_image(upload.data, upload.name, max_pixels=opts.max_pixels)
        image = kit.noisy_copy(image, sigma) if add_noise else image
        return kit.restore(method, _model("denoise", method.key, opts.device, None, ensemble), image, sigma=sigma)

    _downloads(upload, f"denoised_{_named(method, ensemble, key=True)}", out, how, full_hw,
               ("denoise", upload.digest, method.key, add_noise, sigma, ensemble), make_full,
               refused=kit.full_size_refused(method, full_hw[0] * full_hw[1]))


def complete_tab(opts: Any) -> None:
    """Complete: one occluded photo, the hole found or uploaded and shown, RL / supervised / classical."""
    st.markdown("Fill the holes of an occluded photo. The hole is found by itself (the largest near-black "
                "region) or read from a mask you upload. The shipped models were trained on bedroom photos with "
                f"square holes; photos larger than {kit.COMPLETE_SIDE} px are shown downscaled.")
    uploads, _ = _uploads("Occluded photo", "complete", "completion", multiple=False,
                          sample_note="scikit-image's cat photo with a black square")
    mask_col, model_col = st.columns(2)
    with mask_col:
        source, threshold, shape, mask_upload = _mask_widgets("complete")
    with model_col:
        method, ensemble = _method_picker("completion", "complete")
    if not uploads:
        st.info("Upload an occluded photo to start.")
        return
    upload = uploads[0]
    try:
        work, full_hw, how = _work(upload.digest, upload.name, "completion", opts.max_pixels, upload.data)
        mask = _hole(work, source, threshold, shape, mask_upload, opts.max_pixels)
    except USER_ERRORS as exc:
        st.error(_literal(str(exc)))
        return
    if mask is None:
        st.info("Upload the mask (white = missing pixels), or let the app find the hole.")
        st.image(kit.to_uint8(work), caption=_work_note(work, full_hw, how))
        return
    hole = f"hole: {int(mask.sum())} px ({100 * float(mask.mean()):.1f}% of the image)"
    if not mask.any():
        st.warning("No hole found: nothing to fill. Raise the darkness threshold, or upload a mask.")
        st.image(kit.to_uint8(work), caption=_work_note(work, full_hw, how))
        return
    missing = _missing("completion", method.key)
    if missing:
        st.warning(f"{method.label} is not available here: {missing}")
        st.image(kit.mask_overlay(work, mask), caption=f"The hole in red · {hole}")
        return
    mask_key = hashlib.sha256(np.packbits(mask).tobytes()).hexdigest()
    try:
        with st.spinner(f"Filling the hole with {method.label}…"):
            out, trace, seconds = _restored("completion", method.key, opts.device, None, (upload.digest, mask_key),
                                            25.0, (), work, mask, ensemble)
    except USER_ERRORS as exc:
        st.error(_literal(str(exc)))
        return
    left, right = st.columns(2)
    left.image(kit.mask_overlay(work, mask), output_format="PNG",
               caption=f"The hole in red · {hole} · {_work_note(work, full_hw, how)}")
    right.image(kit.to_uint8(out), output_format="PNG", caption=f"{_named(method, ensemble)} ({seconds:.1f} s)")
    _actions(trace, work.shape[:2], method.label)

    def make_full() -> np.ndarray:
        image = kit.decode_image(upload.data, upload.name, max_pixels=opts.max_pixels)
        full_mask = _hole(image, source, threshold, shape, mask_upload, opts.max_pixels, warn=False)
        return kit.restore(method, _model("completion", method.key, opts.device, None, ensemble), image,
                           mask=full_mask)

    _downloads(upload, f"completed_{_named(method, ensemble, key=True)}", out, how, full_hw,
               ("complete", upload.digest, method.key, ensemble, source, threshold, shape,
                mask_upload.digest if mask_upload else None), make_full,
               refused=kit.full_size_refused(method, full_hw[0] * full_hw[1]))


def compare_tab(opts: Any) -> None:
    """Compare: every available method of a task on one image, with PSNR / SSIM given a reference."""
    task = st.radio("Task", kit.TASKS, format_func=_TASK_LABELS.get, horizontal=True, key="compare_task")
    key = f"compare_{task}"
    input_col, reference_col = st.columns(2)
    with input_col:
        uploads, sample_reference = _uploads("Image to restore", key, task, multiple=False,
                                             sample_note="with its clean original as the reference")
    with reference_col:
        file = st.file_uploader("Reference (optional): the clean original, same size, for PSNR and SSIM",
                                type=list(kit.UPLOAD_TYPES), key=f"{key}_reference")
    reference_upload = Upload.of(file.name, file.getvalue()) if file is not None else sample_reference
    setting: dict[str, float] = {}
    sigma, add_noise, mask_widgets = kit.TRAINED_SIGMA, False, None
    options_col, methods_col = st.columns(2)
    with options_col:
        if task == "lowlight":
            try:
                sliders = _knobs(opts.checkpoint, opts.device).sliders
            except USER_ERRORS:  # the Enhance tab says why
                sliders = ()
            for knob in sliders:
                if knob.name == "exposure":
                    setting["exposure"] = st.slider("RL policy: " + knob.label, knob.low, knob.high, knob.default,
                                                    step=0.01, key=f"{key}_exposure")
        elif task == "denoise":
            add_noise = st.checkbox("Add synthetic noise (the upload is clean; it becomes the reference)",
                                    key=f"{key}_add") or sample_reference is not None
            sigma = float(st.slider("Noise level σ (0–255)", 5, 75, 25, step=5, key=f"{key}_sigma"))
        else:
            mask_widgets = _mask_widgets(key)
    available = [m for m in kit.methods_for(task) if _missing(task, m.key) is None]
    with methods_col:
        chosen = st.multiselect("Methods", available, default=available, key=f"{key}_methods",
                                format_func=lambda m: f"{m.family}: {m.label}")
        unavailable = [f"{m.label} ({_missing(task, m.key)})" for m in kit.methods_for(task) if m not in available]
        if unavailable:
            st.caption("Not available here: " + "; ".join(unavailable))
    if not uploads:
        st.info("Upload an image to compare the methods on it.")
        return
    upload = uploads[0]
    try:
        work, full_hw, how = _work(upload.digest, upload.name, task, opts.max_pixels, upload.data)
        reference = None
        if add_noise:
            reference = work
        elif reference_upload is not None:
            ref_work, ref_hw, _ = _work(reference_upload.digest, reference_upload.name, task, opts.max_pixels,
                                        reference_upload.data)
            if ref_hw != full_hw:
                raise ImageError(f"the reference '{reference_upload.name}' is {_size(ref_hw)} but the image is "
                                 f"{_size(full_hw)}; upload the reference of this image")
            reference = ref_work
        mask = _hole(work, *mask_widgets, opts.max_pixels) if mask_widgets else None
    except USER_ERRORS as exc:
        st.error(_literal(str(exc)))
        return
    if task == "completion" and (mask is None or not mask.any()):
        st.warning("No hole to fill: upload the mask, or adjust the darkness threshold.")
        return
    image = kit.noisy_copy(work, sigma) if add_noise else work
    inputs = (upload.digest, add_noise, sigma if add_noise else None,
              hashlib.sha256(np.packbits(mask).tobytes()).hexdigest() if mask is not None else None)
    shown = kit.mask_overlay(image, mask) if mask is not None else kit.to_uint8(image)
    rows = [{"method": "input", "kind": "", "seconds": 0.0, **kit.quality(image, reference)}]
    pictures = [(shown, _caption("Input", _work_note(work, full_hw, how), scores=kit.quality(image, reference)))]
    traces: list[tuple[ActionTrace, str]] = []
    progress = st.progress(0.0, text="Running the methods…")
    for done, method in enumerate(chosen, start=1):
        progress.progress(done / max(1, len(chosen)), text=f"Running {method.label}…")
        try:
            out, trace, seconds = _restored(task, method.key, opts.device, opts.checkpoint, inputs, sigma,
                                            tuple(sorted(setting.items())), image, mask)
            scores = kit.quality(out, reference)
        except USER_ERRORS as exc:
            st.error(f"{method.label}: {_literal(str(exc))}")
            continue
        rows.append({"method": method.label, "kind": method.family, "seconds": round(seconds, 2), **scores})
        traces += [(trace, method.label)] if trace is not None else []
        pictures.append((kit.to_uint8(out), _caption(f"{method.family}: {method.label}", f"{seconds:.1f} s",
                                                     scores=scores)))
    progress.empty()
    for start in range(0, len(pictures), 3):
        columns = st.columns(3)
        for column, (picture, caption) in zip(columns, pictures[start:start + 3]):
            column.image(picture, caption=caption, output_format="PNG")
    for trace, label in traces:
        _actions(trace, image.shape[:2], label)
    if reference is not None:
        ranked = [rows[0]] + sorted(rows[1:], key=lambda r: -r.get("PSNR", -np.inf))
        st.table([{k: (f"{v:.2f}" if isinstance(v, float) else v) for k, v in r.items()} for r in ranked])
    else:
        st.caption("Upload a reference (the clean original) to score the methods with PSNR and SSIM.")


def main(argv: list[str]) -> None:
    """The page. ``argv``: the options :func:`rlenhance.app_support.serve` passes after ``--``."""
    opts = kit.page_options(argv)
    st.set_page_config(page_title="rlenhance: try the models", layout="wide")
    st.title("rlenhance: try the models on your photos")
    st.caption("Pixel-wise reinforcement learning for image enhancement: low light, denoising, completion. "
               "Your photos stay on this machine: each upload is decoded through a temporary file deleted at "
               "once, results are kept in memory, and nothing is saved except what you download.")
    tabs = st.tabs(["Enhance", "Denoise", "Complete", "Compare"])
    for tab, page in zip(tabs, (enhance_tab, denoise_tab, complete_tab, compare_tab)):
        with tab:
            page(opts)


if __name__ == "__main__":
    main(sys.argv[1:])
