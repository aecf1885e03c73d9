"""The RD-RoPE patch on ComfyUI's real WanModel: which rope_encode calls it handles, what it forwards
untouched to the original, and position ids that do not depend on the model's dtype."""
from __future__ import annotations

import pytest
import torch

from mv2id_core.rdrope import RDRoPEConfig, position_ids

import train_helpers as T


@pytest.fixture(scope="module")
def patched(comfy_modules):
    """(RDRoPEEncode installed on a tiny Wan 2.1 clone, its diffusion model)."""
    import comfy.sd
    from mv2id_core.comfyui.rdrope_patch import RDRoPEEncode, patch_rdrope

    mp = patch_rdrope(comfy.sd.load_diffusion_model(str(T.tiny_unet())), RDRoPEConfig("rd", 1.0, 1))
    encode = mp.object_patches["diffusion_model.rope_encode"]
    assert isinstance(encode, RDRoPEEncode)
    return encode, mp.get_model_object("diffusion_model")


def _options(video_frames, ref_frames, **extra):
    from mv2id_core.comfyui.rdrope_patch import OPTIONS_KEY
    return {OPTIONS_KEY: {"video_frames": video_frames, "ref_frames": ref_frames}, **extra}


class _Recorder:
    """Stands in for the original rope_encode: records its arguments, returns a marker."""

    def __init__(self):
        self.calls = []

    def __call__(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        return "original"


@pytest.mark.parametrize("args,kwargs", [
    ((), {"source_id": 2}),                                   # BerniniConditioning's in-context streams
    ((), {"t_start": 3}),
    ((), {"steps_h": 7}),
    ((5,), {}),                                               # positional extras: meaning unknown, forwarded
    ((), {"fps": 24, "future_argument": object()}),           # arguments a newer ComfyUI may add
])
def test_calls_it_cannot_handle_go_to_the_original_with_every_argument(patched, args, kwargs):
    encode, _ = patched
    rec, saved = _Recorder(), encode.original
    encode.original = rec
    try:
        topts = _options(3, 2)
        out = encode(5, 6, 8, *args, device="cpu", dtype=torch.float32, transformer_options=topts, **kwargs)
    finally:
        encode.original = saved
    assert out == "original"
    assert rec.calls == [((5, 6, 8, *args), {"device": "cpu", "dtype": torch.float32, "transformer_options": topts,
                                              **kwargs})]


def test_calls_without_references_or_of_another_length_go_to_the_original(patched):
    encode, _ = patched
    rec, saved = _Recorder(), encode.original
    encode.original = rec
    try:
        assert encode(3, 6, 8, transformer_options={}) == "original"           # no wrapper record
        assert encode(3, 6, 8, transformer_options=_options(3, 0)) == "original"  # no references
        assert encode(6, 6, 8, transformer_options=_options(3, 2)) == "original"  # not video + references
    finally:
        encode.original = saved
    assert len(rec.calls) == 3


def _ids_seen(dm, fn):
    seen = []
    h = dm.rope_embedder.register_forward_hook(lambda m, inp, out: seen.append(inp[0].detach().clone()))
    try:
        fn()
    finally:
        h.remove()
    return seen


def test_position_ids_are_float32_whatever_the_model_dtype(patched):
    """1280x720 with 5 references: the spatial shifts reach ids above 256, which bf16 would round."""
    encode, dm = patched
    video, refs, h, w = 21, 5, 720 // 8, 1280 // 8
    topts = _options(video, refs)
    out = {}
    for dtype in (torch.bfloat16, torch.float32):
        encode._cache = {}
        seen = _ids_seen(dm, lambda: encode(video + refs, h, w, device="cpu", dtype=dtype, transformer_options=topts))
        assert len(seen) == 1
        out[dtype] = seen[0]
    expected = position_ids(video, refs, h // 2, w // 2, encode.config, dtype=torch.float32).unsqueeze(0)
    assert expected.max() > 256
    assert out[torch.bfloat16].dtype == torch.float32
    assert torch.equal(out[torch.bfloat16], expected) and torch.equal(out[torch.float32], expected)
