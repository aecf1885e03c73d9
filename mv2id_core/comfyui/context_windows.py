"""The references under ComfyUI's context windows (core Wan Context Windows: comfy/context_windows.py).

Context windows are a MODEL patch (`context_handler` in model_options): each model evaluation runs the
model on overlapping windows of the latent's frames and fuses the outputs. What core does with the
pack's references, probed on ComfyUI 0.3.75 and 0.33.0 (tests/test_context_windows_host.py):
- the reference latents (`time_dim_concat`, [B, C, N, h, w]) reach every window whole, except when N equals
  the video's latent frames: 0.33.0 then cuts them like a per-frame condition (a window gets the references
  at its own frame indices, plus its causal anchor's), so windows see 3 of 4 references, a different set each;
- each window's call carries the window's frames (0.33.0: plus one causal anchor frame before windows that
  do not start at frame 0) with the references after them, so RD-RoPE places the references for that call's
  own length: nothing to fix;
- EasyCache keeps one state for all windows: 0.33.0 stops with a tensor size error (the anchor frame
  changes the window's length), 0.3.75 adds one window's cached change to the next window's frames;
- an overlap >= the window length runs no window at all (a NaN latent) or stops with "range() arg 3 must
  not be zero"; fuse_method overlap-linear with overlap 0 stops with a tensor size error in its weights.
This module fixes those on a clone (the user's MODEL and its context handler stay as they are): the
references go whole to every window, EasyCache keeps one cache per window, and the windows are checked
before sampling; which windows a step runs stays core's own schedule function.
"""
from __future__ import annotations

import copy
import logging

import comfy.patcher_extension

from .. import latents
from ..errors import InputError

log = logging.getLogger("Mv2ID")

HANDLER_KEY = "context_handler"
CALLBACK_KEY = "mv2id_references"
CACHES_ATTR = "mv2id_window_caches"   # on the pack's copy of the handler
REFERENCE_KEY = "time_dim_concat"
CACHE_KEY = "easycache"             # where core EasyCache / LazyCache keep their state in transformer_options
# core's schedule that cuts the frames without overlap (the others step by length - overlap)
BATCHED = "batched"
# core's fuse method that ramps each window's weights over `context_overlap` frames (none at overlap 0)
OVERLAP_LINEAR = "overlap-linear"
# callback names of comfy.context_windows.IndexListCallbacks (0.3.75 has no RESIZE_COND_ITEM; it never cuts
# 5-D conditions such as the references)
EXECUTE_START, EVALUATE, EXECUTE_CLEANUP, RESIZE_COND_ITEM = (
    "execute_start", "evaluate_context_windows", "execute_cleanup", "resize_cond_item")


def handler_of(model_options: dict):
    """The context handler core's context-window nodes put on the MODEL, or None."""
    return (model_options or {}).get(HANDLER_KEY)


def for_references(model_patcher):
    """`model_patcher` itself without context windows; else a clone whose context handler (a copy)
    hands every window all references and keeps one EasyCache state per window."""
    handler = handler_of(model_patcher.model_options)
    if handler is None or hasattr(handler, CACHES_ATTR):
        return model_patcher
    m = model_patcher.clone()
    ours = copy.copy(handler)
    ours.callbacks = comfy.patcher_extension.copy_nested_dicts(handler.callbacks)
    caches = WindowCaches()
    setattr(ours, CACHES_ATTR, caches)
    for name, fn in ((EXECUTE_START, caches.start), (EVALUATE, caches.window), (EXECUTE_CLEANUP, caches.cleanup),
                     (RESIZE_COND_ITEM, whole_references)):
        comfy.patcher_extension.add_callback_with_key(name, CALLBACK_KEY, fn, ours.callbacks)
    m.model_options[HANDLER_KEY] = ours
    return m


def window_caches(model_options: dict) -> "WindowCaches | None":
    """The per-window EasyCache states for_references put on the handler, or None."""
    return getattr(handler_of(model_options), CACHES_ATTR, None)


def whole_references(cond_key, cond_value, window, x_in, device, new_cond_item):
    """RESIZE_COND_ITEM callback: the reference latents are no per-frame condition; every window gets all."""
    if cond_key != REFERENCE_KEY:
        return None
    return cond_value if device is None else cond_value._copy_with(cond_value.cond.to(device))


class WindowCaches:
    """One EasyCache state per context window (its frames and causal anchor frame), swapped into
    transformer_options around each window's model call: core's single state would compare and reuse
    outputs across windows. The state of a window is made from the run's own EasyCache (same settings)."""

    def __init__(self):
        self.base = None
        self.per_window: dict = {}

    def start(self, handler, model, x_in, conds, timestep, model_options):
        cache = model_options["transformer_options"].get(CACHE_KEY)
        if not _is_easycache(cache):
            self.base = None
            return
        if cache is not self.base:           # a new sampling run (EasyCache clones its state per run)
            self.base, self.per_window = cache, {}

    def window(self, handler, model, x_in, conds, timestep, model_options, window_idx, window, *args):
        if self.base is None:
            return
        anchor = getattr(window, "causal_anchor_index", None)
        key = (tuple(window.index_list), anchor if anchor is not None and anchor >= 0 else None)
        cache = self.per_window.get(key)
        if cache is None:
            cache = self.per_window[key] = self.base.clone()
            cache.start_t, cache.end_t = self.base.start_t, self.base.end_t
        model_options["transformer_options"][CACHE_KEY] = cache

    def cleanup(self, handler, model, x_in, conds, timestep, model_options):
        if self.base is not None:
            model_options["transformer_options"][CACHE_KEY] = self.base

    def release(self) -> tuple[int, int]:
        """Forget the run's caches; (window evaluations EasyCache skipped, windows it kept a cache for)."""
        skipped = sum(c.total_steps_skipped for c in self.per_window.values())
        out = (skipped, len(self.per_window))
        self.base, self.per_window = None, {}
        return out


def _is_easycache(cache) -> bool:
    # by name: ComfyUI loads comfy_extras under file-path module names, so importing its class here would
    # give a second class that isinstance never matches (LazyCache, one state for the whole video, is left as is)
    return type(cache).__name__ == "EasyCacheHolder"


def windows_per_step(handler, latent_frames: int, num_steps: int) -> list[list[list[int]]]:
    """The windows (latent frame indices) core's schedule runs on each step, by its own schedule
    function; one window of all frames when the video fits in one (core then runs no windows).
    InputError for settings under which core would leave frames without a window (a NaN latent) or stop
    with a bare Python error."""
    length, overlap = int(handler.context_length), int(handler.context_overlap)
    if latent_frames <= length:
        return [[list(range(latent_frames))]] * num_steps
    name = handler.context_schedule.name
    if name != BATCHED and overlap >= length:
        t = latents.TEMPORAL_COMPRESSION
        raise InputError(
            f"the context windows' overlap ({overlap} latent frames, about {overlap * t} video frames) is not smaller "
            f"than their length ({length} latent frames = {(length - 1) * t + 1} video frames): ComfyUI would run no "
            f"window at all (a black video) or stop. In 'Wan Context Windows' set context_overlap below "
            f"context_length (e.g. 81 and 30).")
    if overlap == 0 and getattr(handler.fuse_method, "name", None) == OVERLAP_LINEAR:
        raise InputError(
            "fuse_method overlap-linear blends the windows over their overlap, and context_overlap is 0 latent "
            "frames: ComfyUI would stop with a tensor size error. In 'Wan Context Windows' set context_overlap to "
            "at least 4 video frames (e.g. 32), or choose fuse_method pyramid or flat.")
    probe = copy.copy(handler)
    out = []
    for step in range(num_steps):
        probe._step = step
        windows = [list(w) for w in handler.context_schedule.func(latent_frames, probe, {})]
        missed = sorted(set(range(latent_frames)) - {i for w in windows for i in w})
        if missed:
            raise InputError(
                f"the context schedule {name} leaves latent frames {missed[:8]}{' ...' if len(missed) > 8 else ''} "
                f"of {latent_frames} in no window on step {step} (they would come out as NaN, a black video): choose "
                f"another context_schedule, or a context_length / context_overlap that covers the video.")
        out.append(windows)
    return out


def describe(handler, latent_frames: int, windows: list[list[list[int]]], num_refs: int) -> str:
    """One log line: how the video is cut (windows: windows_per_step's) and that every window carries
    the references."""
    t = latents.TEMPORAL_COMPRESSION
    length = int(handler.context_length)
    video = f"{latent_frames} latent frames ({(latent_frames - 1) * t + 1} video frames)"
    if latent_frames <= length:
        return (f"context windows not used: the video, {video}, fits in one window of {length} latent frames "
                f"(ComfyUI then samples it whole)")
    counts = sorted({len(step) for step in windows})
    per_step = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    return (f"context windows: {video} in windows of {length} latent frames ({(length - 1) * t + 1} video frames), "
            f"overlap {int(handler.context_overlap)}, schedule {handler.context_schedule.name}: {per_step} windows "
            f"per step, every window with all {num_refs} references at its own RD-RoPE positions; the reference "
            f"window counts sampling steps")


def check_before_sampling(model_options: dict, latent_image, num_steps: int, num_refs: int) -> None:
    """Check the context windows against the latent to sample (InputError, see windows_per_step) and
    log how the video is cut; nothing without context windows."""
    handler = handler_of(model_options)
    if handler is None or latent_image is None or getattr(latent_image, "is_nested", False):
        return
    frames = int(latent_image.shape[handler.dim])
    windows = windows_per_step(handler, frames, num_steps)
    log.info("[Mv2ID] %s", describe(handler, frames, windows, num_refs))
