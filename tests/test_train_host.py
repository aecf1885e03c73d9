"""A LoRA written by mv2id-train in the real ComfyUI host: LoraLoaderModelOnly loads it and it
changes the sampled video; the Mv2ID RD-RoPE node takes the trained RD-RoPE settings from it."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file

import train_helpers as T
from graphs import Graph, tiny_loaders

W, H, LENGTH = T.W, T.H, T.LENGTH
TRAINED = dict(rdrope_mode="rd", rdrope_offset=2.0, rdrope_first_index=0)


@pytest.fixture(scope="module")
def trained_lora(comfy, comfy_modules, tmp_path_factory):
    """Train 40 steps on the tiny model and put the LoRA into the server's loras folder."""
    from mv2id_train.train import Trainer, config_from_args
    cache = T.make_cache(tmp_path_factory.mktemp("host-cache"), n=1, draws=1)
    out = tmp_path_factory.mktemp("host-run")
    cfg = config_from_args(T.train_args(cache, out, 40, rank=8, lr=3e-3, warmup=0, save_every=0,
                                        name="mv2id_test_lora", **TRAINED))
    cfg.log_every = 0
    Trainer(cfg).run()
    loras = comfy.base_dir / "models" / "loras"
    loras.mkdir(parents=True, exist_ok=True)
    dst = loras / "mv2id_test_lora.safetensors"
    dst.write_bytes((out / "mv2id_test_lora.safetensors").read_bytes())
    # and one without RD-RoPE metadata (a LoRA from some other trainer)
    plain = loras / "mv2id_test_lora_plain.safetensors"
    from safetensors.torch import save_file
    save_file(load_file(str(dst)), str(plain))
    return dst.name, plain.name


@pytest.fixture(scope="module")
def refs(comfy):
    names = []
    rng = np.random.default_rng(3)
    for i in range(3):
        img = (rng.random((H, W, 3)) * 255).astype(np.uint8)
        name = f"mv2id_train_ref_{i}.png"
        Image.fromarray(img).save(comfy.input_dir / name)
        names.append(name)
    return names


def _run(comfy, refs, save, lora=None, rd=None, rd_lora="none"):
    g = Graph()
    model, vae, pos, neg = tiny_loaders(g)
    if lora:
        model = g.add("LoraLoaderModelOnly", model=model, lora_name=lora, strength_model=1.0)
    imgs = [g.add("LoadImage", image=n)[0] for n in refs]
    batch = g.add("ImageBatch", image1=g.add("ImageBatch", image1=imgs[0], image2=imgs[1]), image2=imgs[2])
    cond = g.add("Mv2IDReferenceConditioning", positive=pos, negative=neg, vae=vae, reference_images=batch,
                 width=W, height=H, length=LENGTH, batch_size=1, fit="pad_white")
    mode, offset, first = rd or ("rd", 1.0, 1)
    model = g.add("Mv2IDRDRoPE", model=model, mode=mode, offset=offset, first_index=first, layout=cond[4],
                  lora_name=rd_lora)
    lat = g.add("Mv2IDSampler", model=model, positive=cond[0], negative_text=cond[1], negative_img_text=cond[2],
                latent=cond[3], seed=7, steps=3, text_cfg=5.0, ref_cfg=3.0, ref_start=0.0, ref_end=1.0,
                sampler_name="euler", scheduler="simple", denoise=1.0)
    g.add("Mv2IDTestSaveLatent", samples=lat, filename=save)
    entry = comfy.run(g.prompt())
    path = next(p for p in comfy.output_files(entry) if p.name == f"{save}.safetensors")
    return load_file(str(path))["samples"]


def test_trained_lora_loads_and_changes_the_output(comfy, trained_lora, refs):
    name, _ = trained_lora
    with safe_open(str(comfy.base_dir / "models" / "loras" / name), "pt") as f:
        md = f.metadata()
    assert md["mv2id.rdrope.mode"] == "rd" and md["mv2id.rdrope.offset"] == "2.0" and md["mv2id.rdrope.first_index"] == "0"
    # which base it was trained on (a Phantom-Wan LoRA names its Phantom file), beside the RD-RoPE settings
    assert md["mv2id.train.base_model"] == T.tiny_unet().name and md["mv2id.train.ref_dropout"] == "0.1"
    base = _run(comfy, refs, "no_lora")
    with_lora = _run(comfy, refs, "with_lora", lora=name)
    assert torch.isfinite(with_lora).all()
    diff = float((with_lora - base).abs().mean() / base.abs().mean())
    assert diff > 1e-3, diff
    log = comfy.log_tail(400)
    assert "lora key not loaded" not in log, log


def test_rdrope_node_takes_the_trained_settings_from_the_lora(comfy, trained_lora, refs):
    name, plain = trained_lora
    explicit = _run(comfy, refs, "rd_explicit", lora=name, rd=("rd", 2.0, 0))
    from_file = _run(comfy, refs, "rd_from_file", lora=name, rd=("vanilla", 1.0, 1), rd_lora=name)
    default = _run(comfy, refs, "rd_default", lora=name, rd=("rd", 1.0, 1))
    assert torch.equal(explicit, from_file)            # the file's settings win over the widgets
    assert not torch.allclose(explicit, default)
    # a LoRA without RD-RoPE metadata leaves the widgets in force
    no_meta = _run(comfy, refs, "rd_no_meta", lora=plain, rd=("rd", 1.0, 1), rd_lora=plain)
    assert torch.equal(no_meta, _run(comfy, refs, "rd_plain", lora=plain, rd=("rd", 1.0, 1)))
