"""Graphs and helpers the model-path host tests share (the Mv2ID nodes on the tiny Wan 2.1 models)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from safetensors.torch import load_file

import comfy_server
from graphs import Graph, tiny_loaders

W, H, LENGTH = 64, 48, 9
SAMPLER = dict(text_cfg=7.5, ref_cfg=5.0, sampler_name="euler", scheduler="simple", denoise=1.0)


@pytest.fixture(scope="module")
def ref_files(comfy):
    """Three reference 'views' (different sizes and content) in the server's input folder."""
    names = []
    rng = np.random.default_rng(0)
    for i, (w, h) in enumerate([(40, 56), (64, 64), (80, 48)]):
        img = (rng.random((h, w, 3)) * 255).astype(np.uint8)
        img[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = (60 * i, 120, 255 - 60 * i)
        name = f"mv2id_ref_{i}.png"
        Image.fromarray(img).save(comfy.input_dir / name)
        names.append(name)
    return names


def refs(g: Graph, names, size=None):
    """LoadImage each file; batch them (ImageBatch resizes later ones to the first's size)."""
    imgs = [g.add("LoadImage", image=n)[0] for n in names]
    out = imgs[0]
    for im in imgs[1:]:
        out = g.add("ImageBatch", image1=out, image2=im)
    if size:
        out = g.add("ImageScale", image=out, upscale_method="bilinear", width=size[0], height=size[1], crop="disabled")
    return out


def conditioning(g: Graph, names, *, fit="pad_white", length=LENGTH, batch=1, width=W, height=H, shift=8.0,
                 images=None):
    """(model, vae, Mv2IDReferenceConditioning ref) on the tiny loaders."""
    model, vae, pos, neg = tiny_loaders(g, shift=shift)
    cond = g.add("Mv2IDReferenceConditioning", positive=pos, negative=neg, vae=vae,
                 reference_images=images if images is not None else refs(g, names),
                 width=width, height=height, length=length, batch_size=batch, fit=fit)
    return model, vae, cond


def sampler(g: Graph, model, cond, *, latent=None, seed=11, steps=3, ref_start=0.0, ref_end=1.0, **kw):
    """An Mv2IDSampler on the three conditionings of `cond`; kw overrides SAMPLER and adds the optional inputs."""
    return g.add("Mv2IDSampler", model=model, positive=cond[0], negative_text=cond[1], negative_img_text=cond[2],
                 latent=latent if latent is not None else cond[3], seed=seed, steps=steps, ref_start=ref_start,
                 ref_end=ref_end, **{**SAMPLER, **kw})


def mv2id(g, names, *, model=None, mode="rd", ref_end=1.0, batch=1, steps=3, seed=11, fit="pad_white",
          length=LENGTH, patch=True, counter=None, save="lat", **sampler_kw):
    """The whole model path: references -> (RD-RoPE) -> Mv2ID Sampler -> saved latent. Returns (latent, vae)."""
    m, vae, cond = conditioning(g, names, fit=fit, length=length, batch=batch)
    model = model or m
    if counter:
        model = g.add("Mv2IDTestCallCounter", model=model, key=counter)
    if patch:
        model = g.add("Mv2IDRDRoPE", model=model, mode=mode, offset=1.0, first_index=1, layout=cond[4])
    lat = sampler(g, model, cond, seed=seed, steps=steps, ref_end=ref_end, **sampler_kw)
    g.add("Mv2IDTestSaveLatent", samples=lat, filename=save)
    if counter:
        g.add("Mv2IDTestCallReport", _id="report", samples=lat, key=counter)
    return lat, vae


def latent(comfy, entry, name):
    path = next(p for p in comfy.output_files(entry) if p.name == f"{name}.safetensors")
    return load_file(str(path))["samples"]


def run_latent(comfy, g: Graph, name):
    return latent(comfy, comfy.run(g.prompt()), name)


def calls(entry, node="report"):
    """The diffusion-model calls Mv2IDTestCallCounter recorded: [{batch, frames, cond_or_uncond, sigma}]."""
    return json.loads(entry["outputs"][node]["text"][0])["calls"]


def evaluations(call_list):
    """Group forward calls into model evaluations (one predict_noise each): ComfyUI may split the
    conditions of one evaluation over several calls at the same sigma, but never runs one
    condition twice in one evaluation. Returns [(sigma, passes)]."""
    out, seen = [], set()
    for c in call_list:
        conds = set(c["cond_or_uncond"])
        if out and c["sigma"] == out[-1][0] and not (conds & seen):
            out[-1] = (out[-1][0], out[-1][1] + c["batch"])
            seen |= conds
        else:
            out.append((c["sigma"], c["batch"]))
            seen = conds
    return out


def error_of(comfy, prompt):
    with pytest.raises(comfy_server.ComfyError) as ei:
        comfy.run(prompt)
    return str(ei.value)
