"""RD-RoPE as a patch on a ComfyUI ModelPatcher *clone*.

An object patch replaces the diffusion model's `rope_encode`, and a DIFFUSION_MODEL wrapper tells
it how many reference frames the current call carries (the wrapper sees `time_dim_concat`).
ComfyUI applies and removes both when the clone is loaded/unloaded, so the original MODEL is
never changed. Training installs the same replacement on a bare WanModel (install_on_model).
"""
from __future__ import annotations

import types

import torch

import comfy.patcher_extension

from ..errors import InputError
from ..latents import token_grid
from ..rdrope import RDRoPEConfig, position_ids
from .wan import require_wan21

WRAPPER_KEY = "mv2id_rdrope"
OPTIONS_KEY = "mv2id_rdrope"


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


class ReferenceCountWrapper:
    """DIFFUSION_MODEL wrapper: records how many reference frames this forward carries."""

    def __init__(self, expected_refs: int | None):
        self.expected_refs = expected_refs

    def __call__(self, executor, x, timestep, context, clip_fea=None, time_dim_concat=None,
                 transformer_options={}, **kwargs):
        n_ref = 0 if time_dim_concat is None else int(time_dim_concat.shape[2])
        if self.expected_refs is not None and n_ref not in (0, self.expected_refs):
            raise InputError(f"the RD-RoPE patch was set up for {self.expected_refs} references (its layout "
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
    original = _underlying(m.object_patches.get("diffusion_model.rope_encode"), dm)
    m.add_object_patch("diffusion_model.rope_encode", RDRoPEEncode(dm, config, original))
    m.remove_wrappers_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, WRAPPER_KEY)
    m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, WRAPPER_KEY,
                           ReferenceCountWrapper(expected_refs))
    return m


def install_on_model(diffusion_model, config: RDRoPEConfig) -> None:
    """Put the same rope_encode replacement on a bare WanModel instance (training has no ModelPatcher)."""
    original = _underlying(getattr(diffusion_model, "rope_encode", None), diffusion_model)
    diffusion_model.rope_encode = RDRoPEEncode(diffusion_model, config, original)


def _underlying(current, diffusion_model):
    """What an RD-RoPE replacement wraps: the current rope_encode (another patch's, or the model's own), but
    never an earlier RD-RoPE replacement (replaced, not stacked)."""
    if isinstance(current, RDRoPEEncode):
        return current.original
    return current if current is not None else types.MethodType(type(diffusion_model).rope_encode, diffusion_model)


def wrapper_options() -> dict:
    """transformer_options that carry the reference-count wrapper, as ComfyUI passes the patched
    clone's wrappers while sampling (for forwards made outside a sampler, e.g. training)."""
    return {"wrappers": {comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL: {WRAPPER_KEY: [ReferenceCountWrapper(None)]}}}
