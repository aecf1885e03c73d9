"""Reference guidance as a ComfyUI guider: Phantom's three passes (mv2id_core.guidance) inside a
step window, and text CFG or a single pass outside it, built on comfy.samplers.CFGGuider so
ComfyUI's samplers, previews, progress, interrupt and model patches (EasyCache, LazyCache,
TorchCompileModel) work as usual.
"""
from __future__ import annotations

import logging

import comfy.samplers
import node_helpers

from .. import latents
from ..errors import InputError
from ..guidance import CONDITIONS, REFERENCE, GuidanceConfig, StepTracker, step_index
from . import context_windows
from .wan import require_wan21

log = logging.getLogger("Mv2ID")

# ComfyUI's sampler functions whose first evaluation after step i's callback is a corrector at exactly
# sigmas[i+1] (on Wan's flow model), so it still belongs to step i (tests/test_guidance_steps.py checks
# this list against every sampler of the running ComfyUI; samplers not listed are learned while running)
NEXT_SIGMA_CORRECTORS = frozenset({
    "sample_heun", "sample_heunpp2", "sample_exp_heun_2_x0", "sample_exp_heun_2_x0_sde", "sample_dpm_2_ancestral",
    "sample_dpmpp_2s_ancestral_cfg_pp"})


def corrects_at_next_sigma(sampler) -> bool | None:
    """True for a sampler listed in NEXT_SIGMA_CORRECTORS, None (learn while running) otherwise."""
    fn = getattr(sampler, "sampler_function", None)
    return True if getattr(fn, "__name__", None) in NEXT_SIGMA_CORRECTORS else None


class _Run:
    """Per sampling run: the step tracker and which conditions the previous model evaluation ran."""

    def __init__(self, sigmas, sampler):
        self.steps = StepTracker(sigmas.detach().float().cpu().tolist(), corrects_at_next_sigma(sampler))
        self.last_conds: frozenset | None = None


class ReferenceGuider(comfy.samplers.CFGGuider):
    """Three-pass reference guidance (see mv2id_core.guidance) with a step window.

    With the window covering all steps it computes exactly what ComfyUI core's DualCFGGuider
    ("regular" style) computes for cond1=positive, cond2=negative_text, negative=negative_img_text.
    Conditions are always passed with `positive` last: ComfyUI batches them in reverse, so
    positive, the one condition that runs on every step, is the one EasyCache keys on.
    """

    def __init__(self, model_patcher):
        require_wan21(model_patcher)
        # under core context windows: a clone whose windows all get every reference (context_windows)
        super().__init__(context_windows.for_references(model_patcher))
        self._run = None
        self._mode = None

    def set_conds(self, positive, negative_text, negative_img_text):
        middle = node_helpers.conditioning_set_values(negative_text, {"prompt_type": "negative"})
        self.inner_set_conds({"positive": positive, "middle": middle, "negative": negative_img_text})

    def set_cfg(self, guidance: GuidanceConfig):
        self.guidance = guidance
        self.cfg = guidance.text_scale

    # ------------------------------------------------------------------ one sampling run
    def sample(self, noise, latent_image, sampler, sigmas, denoise_mask=None, callback=None, disable_pbar=False,
               seed=None):
        check_latent_matches_references(latent_image, self.original_conds)
        context_windows.check_before_sampling(self.model_options, latent_image, len(sigmas) - 1,
                                              reference_count(self.original_conds))
        run = _Run(sigmas, sampler)

        def step_callback(step, x0, x, total_steps):
            run.steps.callback(step)
            if callback is not None:
                return callback(step, x0, x, total_steps)

        self._run = run
        try:
            return super().sample(noise, latent_image, sampler, sigmas, denoise_mask=denoise_mask,
                                  callback=step_callback, disable_pbar=disable_pbar, seed=seed)
        finally:
            self._run = None
            caches = context_windows.window_caches(self.model_options)
            if caches is not None and caches.per_window:
                skipped, windows = caches.release()
                log.info("[Mv2ID] EasyCache under context windows: one cache per window (%d windows), %d window "
                         "evaluations reused", windows, skipped)

    def outer_predict_noise(self, x, timestep, model_options={}, seed=None):
        # every evaluation passes here, also those a PREDICT_NOISE wrapper (LazyCache) answers without
        # predict_noise: the step tracker must see them all, in order
        self._mode = self._step_mode(timestep, model_options)
        try:
            return super().outer_predict_noise(x, timestep, model_options, seed)
        finally:
            self._mode = None

    def _step_mode(self, timestep, model_options) -> str:
        g = self.guidance
        if g.covers_all_steps:
            return REFERENCE
        run = self._run
        if run is not None:
            return g.step_mode(run.steps.evaluation(float(timestep.flatten()[0])), run.steps.num_steps)
        # called outside sample() (no step callback): fall back to the sigma's place in the schedule
        sigmas = model_options.get("transformer_options", {}).get("sample_sigmas")
        if sigmas is None:
            return REFERENCE
        s = sigmas.detach().float().cpu()
        return g.step_mode(step_index(float(timestep.flatten()[0]), s), len(s) - 1)

    def _calc(self, named_conds, x, timestep, model_options):
        """calc_cond_batch over [(name, cond or None), ...] (positive last).

        With a step cache (EasyCache) active, conditions that the previous evaluation did not run
        (the zero-reference pass when the window opens) are evaluated in a call of their own after
        the others: the cache then computes them instead of reusing a result it never saw (which
        raised KeyError on ComfyUI 0.3.75), while the conditions it knows may still be skipped.
        """
        run = self._run
        names = frozenset(n for n, c in named_conds if c is not None)
        split = (run is not None and run.last_conds is not None and context_windows.CACHE_KEY in model_options.get(
            "transformer_options", {}) and not names <= run.last_conds and names & run.last_conds)
        if not split:
            out = comfy.samplers.calc_cond_batch(self.inner_model, [c for _, c in named_conds], x, timestep,
                                                 model_options)
        else:
            known = [c if n in run.last_conds else None for n, c in named_conds]
            new = [None if n in run.last_conds else c for n, c in named_conds]
            out_known = comfy.samplers.calc_cond_batch(self.inner_model, known, x, timestep, model_options)
            out_new = comfy.samplers.calc_cond_batch(self.inner_model, new, x, timestep, model_options)
            out = [a if c is not None else b for a, b, c in zip(out_known, out_new, known)]
        if run is not None:
            run.last_conds = names
        return out

    def predict_noise(self, x, timestep, model_options={}, seed=None):
        g = self.guidance
        mode = getattr(self, "_mode", None) or self._step_mode(timestep, model_options)
        runs = g.conditions(mode, cfg1_shortcut=not model_options.get("disable_cfg1_optimization", False))
        conds = {name: self.conds.get(name) if name in runs else None for name in CONDITIONS}
        # outside the window the zero-reference pass is never passed at all
        names = CONDITIONS if mode == REFERENCE else CONDITIONS[1:]
        out = dict(zip(names, self._calc([(n, conds[n]) for n in names], x, timestep, model_options)))
        if mode == REFERENCE:
            return comfy.samplers.cfg_function(self.inner_model, out["middle"], out["negative"], g.ref_scale, x,
                                               timestep, model_options=model_options, cond=conds["middle"],
                                               uncond=conds["negative"]) \
                + (out["positive"] - out["middle"]) * g.text_scale
        # through cfg_function also at scale 1 (uncond = zeros then), as core KSampler at cfg 1, so
        # post-CFG patches still run
        return comfy.samplers.cfg_function(self.inner_model, out["positive"], out["middle"], g.text_scale_in(mode), x,
                                           timestep, model_options=model_options, cond=conds["positive"],
                                           uncond=conds["middle"])


def reference_count(conds) -> int:
    """Reference frames the positive conditioning carries (time_dim_concat [B, C, N, h, w]); 0 without."""
    for entry in (conds or {}).get("positive") or []:
        ref = entry.get("time_dim_concat") if isinstance(entry, dict) else None
        if ref is not None and ref.ndim == 5:
            return int(ref.shape[2])
    return 0


def check_latent_matches_references(latent_image, conds) -> None:
    """InputError unless the latent's channels and height x width match the reference latents the
    conditionings carry (time_dim_concat [1, C, N, h, w]); ComfyUI would fail deep in the model."""
    if latent_image is None or getattr(latent_image, "is_nested", False) or latent_image.ndim != 5:
        return
    c, h, w = latent_image.shape[1], latent_image.shape[-2], latent_image.shape[-1]
    s = latents.SPATIAL_COMPRESSION
    for name, entries in (conds or {}).items():
        for entry in entries or []:
            ref = entry.get("time_dim_concat") if isinstance(entry, dict) else None
            if ref is None or ref.ndim != 5:
                continue
            rc, rh, rw = ref.shape[1], ref.shape[-2], ref.shape[-1]
            if (rh, rw) != (h, w) or rc != c:
                raise InputError(
                    f"the latent to sample is {w * s}x{h * s} px ({c} channels, latent {w}x{h}) but the references "
                    f"in the conditioning were made for {rw * s}x{rh * s} px ({rc} channels, latent {rw}x{rh}): "
                    f"connect the latent output of the same 'Mv2ID Reference Conditioning' node, or give that node "
                    f"the width and height of your latent.")
