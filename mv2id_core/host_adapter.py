"""The one place where mv2id_core touches ComfyUI's model objects.

- RD-RoPE as a patch on a ModelPatcher *clone*: an object patch on the diffusion model's
  `rope_encode` plus a DIFFUSION_MODEL wrapper that tells it how many reference frames the
  current call carries (it sees `time_dim_concat`). ComfyUI applies and removes both when
  the clone is loaded/unloaded, so the original MODEL is never changed.
- Mv2IDGuider: Phantom's three-pass reference guidance with a step window, built on
  comfy.samplers.CFGGuider so ComfyUI's samplers, previews, progress and interrupt work.
"""
from __future__ import annotations

import math
import types

import torch

import comfy.model_base
import comfy.patcher_extension
import comfy.samplers
import node_helpers

from .guidance import GuidanceConfig, in_window, step_index
from .rdrope import RDRoPEConfig, position_ids, token_grid

WRAPPER_KEY = "mv2id_rdrope"
OPTIONS_KEY = "mv2id_rdrope"


class ModelTypeError(TypeError):
    """The MODEL is not one this patch supports; the message says what is expected."""


def require_wan21(model) -> None:
    """Raise ModelTypeError unless `model` (a ModelPatcher) holds a Wan 2.1 (16-channel) model."""
    base = getattr(model, "model", None)
    dm = getattr(base, "diffusion_model", None)
    name = type(base).__name__ if base is not None else type(model).__name__
    if not isinstance(base, comfy.model_base.WAN21) or isinstance(base, comfy.model_base.WAN22):
        raise ModelTypeError(
            f"Mv2ID needs a Wan 2.1 model (T2V 1.3B or 14B), but this MODEL is {name}. Load a Wan 2.1 "
            f"diffusion model with 'Load Diffusion Model' (e.g. wan2.1_t2v_14B_fp16.safetensors).")
    if base.latent_format.latent_channels != 16 or not hasattr(dm, "rope_embedder"):
        raise ModelTypeError(f"Mv2ID needs a Wan 2.1 model with a 16-channel latent; {name} is not one.")


class RDRoPEEncode:
    """Replacement for WanModel.rope_encode that knows where the reference frames are.

    It handles only the call WanModel._forward makes for the video + reference sequence: the
    token grid of exactly the frames the wrapper saw, and no other arguments than
    device/dtype/transformer_options at their usual meaning. Every other call (other t_start or
    steps, an in-context stream's `source_id`, arguments a newer ComfyUI adds) goes to the
    original with all its arguments, positional and keyword, unchanged.
    """

    HANDLED = {"device", "dtype", "transformer_options"}

    def __init__(self, diffusion_model, config: RDRoPEConfig, original):
        self.diffusion_model = diffusion_model
        self.config = config
        self.original = original
        self._cache = {}  # the same shapes recur on every step: keep the last frequencies

    def __deepcopy__(self, memo):  # model_options are deep-copied on clone; weights must not be
        return self

    def _handles(self, t, args, kwargs) -> dict | None:
        """The reference record when this call is the main video + reference grid, else None."""
        if args or not self.HANDLED.issuperset(kwargs):
            return None
        info = (kwargs.get("transformer_options") or {}).get(OPTIONS_KEY)
        if info is None or info["ref_frames"] == 0:
            return None
        if t != info["video_frames"] + info["ref_frames"]:
            return None   # e.g. a model variant that adds frames of its own
        return info

    def __call__(self, t, h, w, *args, **kwargs):
        info = self._handles(t, args, kwargs)
        if info is None:
            return self.original(t, h, w, *args, **kwargs)
        device, dtype = kwargs.get("device"), kwargs.get("dtype")
        p = self.diffusion_model.patch_size
        t_len, h_len, w_len = token_grid(t, h, w, p)
        n_ref = info["ref_frames"]
        rope_options = kwargs["transformer_options"].get("rope_options", None)
        key = (t_len, h_len, w_len, n_ref, str(device), dtype, repr(sorted((rope_options or {}).items())))
        freqs = self._cache.get(key)
        if freqs is None:
            # ids in float32 whatever the model's dtype: bf16 cannot hold every integer above 256
            ids = position_ids(t_len - n_ref, n_ref, h_len, w_len, self.config, rope_options, device=device,
                               dtype=torch.float32)
            freqs = self.diffusion_model.rope_embedder(ids.unsqueeze(0)).movedim(1, 2)
            self._cache = {key: freqs}   # one entry: bounded memory, re-filled when shapes change
        return freqs


class _RefCountWrapper:
    """DIFFUSION_MODEL wrapper: records how many reference frames this forward carries."""

    def __init__(self, expected_refs: int | None):
        self.expected_refs = expected_refs

    def __call__(self, executor, x, timestep, context, clip_fea=None, time_dim_concat=None,
                 transformer_options={}, **kwargs):
        n_ref = 0 if time_dim_concat is None else int(time_dim_concat.shape[2])
        if self.expected_refs is not None and n_ref not in (0, self.expected_refs):
            raise ValueError(f"the RD-RoPE patch was set up for {self.expected_refs} references (its layout "
                             f"input) but the conditioning carries {n_ref}; connect the layout from the same "
                             f"'Mv2ID Reference Conditioning' node that feeds the sampler.")
        opts = dict(transformer_options)
        opts[OPTIONS_KEY] = {"video_frames": int(x.shape[2]), "ref_frames": n_ref}
        return executor(x, timestep, context, clip_fea, time_dim_concat, opts, **kwargs)


def patch_rdrope(model, config: RDRoPEConfig, expected_refs: int | None = None):
    """A clone of `model` whose reference tokens use RD-RoPE (or vanilla) position ids.

    The original ModelPatcher is untouched: the patch lives in the clone's object patches and
    wrappers, which ComfyUI applies only while the clone is the model being run.
    """
    require_wan21(model)
    m = model.clone()
    dm = m.get_model_object("diffusion_model")
    # keep another node's rope_encode patch on this clone, but never stack RD-RoPE on itself
    original = m.object_patches.get("diffusion_model.rope_encode")
    if isinstance(original, RDRoPEEncode):
        original = original.original
    if original is None:
        original = types.MethodType(type(dm).rope_encode, dm)
    m.add_object_patch("diffusion_model.rope_encode", RDRoPEEncode(dm, config, original))
    m.remove_wrappers_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, WRAPPER_KEY)
    m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, WRAPPER_KEY,
                           _RefCountWrapper(expected_refs))
    m.model_options.setdefault("transformer_options", {})["mv2id_rdrope_config"] = config.to_dict()
    return m


class Mv2IDGuider(comfy.samplers.CFGGuider):
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


def zero_reference_latent(reference_latent: torch.Tensor) -> torch.Tensor:
    """Zero references in the model's space: time_dim_concat goes through process_latent_in,
    so 'zero' is stored as process_out(0), as ComfyUI core's Phantom node does."""
    import comfy.latent_formats
    return comfy.latent_formats.Wan21().process_out(torch.zeros_like(reference_latent))
