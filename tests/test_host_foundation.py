"""The harness itself, proven against the real ComfyUI host with the tiny Wan 2.1 models."""
from __future__ import annotations

import av
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import comfy_server
from graphs import Graph, tiny_loaders


def _t2v_prompt(width=64, height=48, length=9, steps=3, seed=7, prefix="t2v/foundation"):
    g = Graph()
    model, vae, pos, neg = tiny_loaders(g)
    latent = g.add("EmptyHunyuanLatentVideo", width=width, height=height, length=length, batch_size=1)
    sampled = g.add("KSampler", model=model, seed=seed, steps=steps, cfg=5.0, sampler_name="euler",
                    scheduler="simple", positive=pos, negative=neg, latent_image=latent, denoise=1.0)
    g.add("Mv2IDTestSaveLatent", samples=sampled, filename=prefix.replace("/", "_"))
    frames = g.add("VAEDecode", samples=sampled, vae=vae)
    video = g.add("CreateVideo", images=frames, fps=16.0)
    g.add("SaveVideo", _id="save", video=video, filename_prefix=prefix, format="mp4", codec="h264")
    return g.prompt()


def test_wan21_t2v_end_to_end_on_tiny_models(comfy):
    entry = comfy.run(_t2v_prompt())
    videos = [p for p in comfy.output_files(entry, "save") if p.suffix == ".mp4"]
    assert len(videos) == 1 and videos[0].is_file()
    with av.open(str(videos[0])) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == 9                      # (3 latent frames - 1) * 4 + 1
    assert frames[0].shape == (48, 64, 3)
    assert np.std(np.stack(frames).astype(np.float32)) > 0.5, "decoded video is flat"
    latents = [p for p in comfy.output_files(entry) if p.suffix == ".safetensors"]
    lat = load_file(str(latents[0]))["samples"]
    assert lat.shape == (1, 16, 3, 6, 8)
    assert torch.isfinite(lat).all()


def test_same_seed_gives_identical_latents(comfy):
    def run(**kw):
        comfy.free()   # clear ComfyUI's cache so the sampler really runs again
        return load_file(str(_latent(comfy, comfy.run(_t2v_prompt(**kw)))))["samples"]
    a, b, c = run(prefix="det_a"), run(prefix="det_b"), run(prefix="det_c", seed=8)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def _latent(comfy, entry):
    return next(p for p in comfy.output_files(entry) if p.suffix == ".safetensors")


def test_pack_nodes_listed_with_tooltips_and_descriptions(comfy):
    info = comfy.object_info()
    ours = {k: v for k, v in info.items() if v.get("python_module", "").startswith("custom_nodes.ComfyUI-Mv2ID")}
    assert ours, "no Mv2ID nodes registered; server log:\n" + comfy.log_tail()
    for name, spec in ours.items():
        assert name.startswith("Mv2ID"), name
        assert spec.get("description"), f"{name} has no description"
        for section in ("required", "optional"):
            for inp, s in (spec["input"].get(section) or {}).items():
                opts = s[1] if len(s) > 1 else {}
                assert opts.get("tooltip"), f"{name}.{inp} has no tooltip"


def test_validation_error_is_reported_and_server_stays_up(healthy):
    prompt = _t2v_prompt(prefix="bad")
    prompt["1"]["inputs"]["unet_name"] = "does_not_exist.safetensors"
    with pytest.raises(comfy_server.ComfyError) as ei:
        healthy.queue(prompt)
    assert "does_not_exist.safetensors" in str(ei.value)
