"""Reference guidance as a ComfyUI guider: Phantom's three passes (mv2id_core.guidance) inside a
step window, built on comfy.samplers.CFGGuider so ComfyUI's samplers, previews, progress and
interrupt work as usual.
"""
from __future__ import annotations

import math

import comfy.samplers
import node_helpers

from ..guidance import GuidanceConfig, in_window, step_index


class ReferenceGuider(comfy.samplers.CFGGuider):
    """Three-pass reference guidance (see mv2id_core.guidance) with a step window.

    With the window covering all steps it computes exactly what ComfyUI core's DualCFGGuider
    ("regular" style) computes for cond1=positive, cond2=negative_text, negative=negative_img_text.
    """

    def set_conds(self, positive, negative_text, negative_img_text):
        middle = node_helpers.conditioning_set_values(negative_text, {"prompt_type": "negative"})
        self.inner_set_conds({"positive": positive, "middle": middle, "negative": negative_img_text})

    def set_cfg(self, guidance: GuidanceConfig):
        self.guidance = guidance
        self.cfg = guidance.text_scale

    def _reference_pass_active(self, timestep, model_options) -> bool:
        g = self.guidance
        if g.window_start <= 0.0 and g.window_end >= 1.0:
            return True
        sigmas = model_options.get("transformer_options", {}).get("sample_sigmas")
        if sigmas is None:
            return True
        if getattr(self, "_sigmas_src", None) is not sigmas:   # one host copy per sampling run
            self._sigmas_src, self._sigmas_cpu = sigmas, sigmas.detach().float().cpu()
        n = len(self._sigmas_cpu) - 1
        return in_window(step_index(float(timestep.flatten()[0]), self._sigmas_cpu), n, g.window_start, g.window_end)

    def predict_noise(self, x, timestep, model_options={}, seed=None):
        g = self.guidance
        positive, middle, negative = (self.conds.get(k) for k in ("positive", "middle", "negative"))
        if self._reference_pass_active(timestep, model_options):
            if not model_options.get("disable_cfg1_optimization", False):
                if math.isclose(g.ref_scale, 1.0):
                    negative = None
                    if math.isclose(g.text_scale, 1.0):
                        middle = None
            out = comfy.samplers.calc_cond_batch(self.inner_model, [negative, middle, positive], x, timestep, model_options)
            return comfy.samplers.cfg_function(self.inner_model, out[1], out[0], g.ref_scale, x, timestep,
                                               model_options=model_options, cond=middle, uncond=negative) \
                + (out[2] - out[1]) * g.text_scale
        # outside the window: text CFG between pos and mid; the zero-reference pass is skipped
        if not model_options.get("disable_cfg1_optimization", False) and math.isclose(g.text_scale, 1.0):
            middle = None
        out = comfy.samplers.calc_cond_batch(self.inner_model, [middle, positive], x, timestep, model_options)
        if middle is None:
            return out[1]
        return comfy.samplers.cfg_function(self.inner_model, out[1], out[0], g.text_scale, x, timestep,
                                           model_options=model_options, cond=positive, uncond=middle)
