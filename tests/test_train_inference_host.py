"""What is trained is what runs: a LoRA trained by mv2id-cache + mv2id-train, loaded in the real ComfyUI
server the way the mv2id_trained_lora workflow loads it, comes closest to what it was trained on with the
RD-RoPE positions it was trained with.

The synthetic truth. Three "people" (a coloured ellipse on white, as references are at inference) and three
static clips, one per person, stored losslessly, all with ONE caption. Every clip gets all three photos as
its references, rotated so that its own person is the FIRST reference. Caption and set of references are the
same for every clip; only the references' positions say which clip to make, so the LoRA has to read its
references at the positions it was trained with.

The base. The tiny random Wan model cannot denoise, and a LoRA on its blocks cannot teach it to (its head and
modulation stay random; measured: the loss stays at the velocity's variance). So, as users train on
Phantom-Wan, the test first makes a base that denoises the clips: `mv2id-train --full` with every reference
zeroed (--ref-dropout 1, vanilla positions), a base that never reads a reference. Then the LoRA: `mv2id-train`
with its own defaults (rd, offset 1, first_index 1), once with region masks off and once on (mv2id-cache
--mask-ratio 0.6, 16 mask draws; inference references unmasked, as in the paper).

In ComfyUI: UNETLoader (the base) -> LoraLoaderModelOnly -> ModelSamplingSD3 (shift 5) -> Mv2ID RD-RoPE ->
Mv2ID Reference Conditioning (the three photos from input/) -> Mv2ID Sampler (euler, simple, 10 steps, both
guidance scales 1: the conditional prediction alone, as trained), all from seed 7's noise; the result is
compared with the clip's latent in the cache (relative L2 distance in the latent SaveLatent writes).
Variants: Mv2ID RD-RoPE `auto` with the LoRA named (the workflow), the same LoRA forced to `vanilla`, and the
same LoRA without references (core KSampler, same model, text and noise). The same sampling done by the
trainer's own model code in-process gave the same distances to the third decimal (newest host).

Measured (2 shared CPU cores; distances for clips 0, 1, 2):
  newest (0.33.0)  masks off: auto 0.754 0.754 0.837  vanilla 1.285 1.339 1.414  no refs 1.587 1.738 1.762
                   masks on:  auto 0.822 0.852 0.911  vanilla 1.104 1.127 1.225  no refs 1.227 1.311 1.366
  oldest (0.3.75)  masks off: auto 0.828 0.827 0.913  vanilla 1.102 1.095 1.280  no refs 2.439 2.638 2.694
                   masks on:  auto 0.836 0.856 0.927  vanilla 0.916 0.931 0.996  no refs 2.203 2.353 2.422
i.e. vanilla is 1.3-1.8x farther than auto with masks off and 1.07-1.34x with masks on, no references 1.5-3.2x.
The tiny model reproduces the clips only roughly (its own clip is the nearest of the three for two clips of
three), and with masks on it barely separates the positions on 0.3.75: the separation there is a property of
this tiny model's training run (changing the LoRA's rank or reference dropout moved it between 1.01 and
1.41), so that case asserts only that auto is closer on average. Asserted: no references >= 1.3x for every
clip; vanilla >= 1.2x for every clip with masks off, on average >= 1.04x and for every clip > 1x with masks on.
Training takes about two minutes here (base 600 steps, each LoRA 800 steps, batches of 3, one thread).
"""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

import train_helpers as T
from graphs import Graph

W, H, LENGTH, SEED = 64, 48, 5, 7
COLORS = ((0.95, 0.1, 0.1), (0.1, 0.9, 0.2), (0.15, 0.2, 0.95))
MASKS = {"off": ["--mask-ratio", "0", "--mask-draws", "1"],
         "on": ["--mask-ratio", "0.6", "--mask-block", "8", "--mask-draws", "16"]}
FAST = ["--no-progress", "--no-gradient-checkpointing", "--save-dtype", "fp32", "--save-every", "0", "--warmup", "10",
        "--schedule", "cosine", "--batch-size", "3"]


def person(color) -> np.ndarray:
    """[H, W, 3] uint8: a coloured ellipse (the person) on white."""
    yy, xx = np.meshgrid(np.linspace(-1, 1, H), np.linspace(-1, 1, W), indexing="ij")
    inside = ((yy / 0.8) ** 2 + (xx / 0.6) ** 2 <= 1)[..., None]
    return np.where(inside, np.array(color) * 255, 255).round().astype(np.uint8)


def lossless_video(path, frames) -> None:
    """Frames stored exactly (PNG frames in a QuickTime file), so the clip's first latent frame is its photo's latent."""
    import av
    with av.open(str(path), mode="w") as c:
        s = c.add_stream("png", rate=16)
        s.width, s.height, s.pix_fmt = W, H, "rgb24"
        for f in frames:
            for pkt in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)


def order(i: int) -> list[int]:
    """The references of clip i: every person, its own first."""
    return [(i + k) % len(COLORS) for k in range(len(COLORS))]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Photos, static clips, a manifest as mv2id-data writes it, and the caption's embedding (the one the test
    conditioning node gives for seed 1: [1, 16, 4096])."""
    d = tmp_path_factory.mktemp("people")
    rows = []
    for i, c in enumerate(COLORS):
        img = person(c)
        Image.fromarray(img).save(d / f"person{i}.png")
        lossless_video(d / f"clip{i}.mov", [img] * LENGTH)
    for i in range(len(COLORS)):
        rows.append({"id": f"clip{i}", "video": str(d / f"clip{i}.mov"), "frame_indices": list(range(LENGTH)),
                     "references": [f"person{j}.png" for j in order(i)], "caption": "a person"})
    (d / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    save_file({"default": torch.randn(1, 16, 4096, generator=torch.Generator().manual_seed(1))},
              str(d / "contexts.safetensors"))
    return d


def _cli(main, args):
    """Run a CLI's main on one thread (much faster than two on a shared machine for a model this small)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(args) == 0, args
    finally:
        torch.set_num_threads(threads)


def _cache(data, out, masks: str):
    from mv2id_train import cache
    _cli(cache.main, ["--manifest", str(data / "manifest.jsonl"), "--vae", str(T.tiny_vae()), "--context-file",
                      str(data / "contexts.safetensors"), "--out", str(out), "--width", str(W), "--height", str(H),
                      "--no-progress", *MASKS[masks]])
    return out


@pytest.fixture(scope="module")
def trained(comfy, comfy_modules, data, tmp_path_factory):
    """The base (in the server's diffusion_models/) and one LoRA per mask setting (in its loras/)."""
    from mv2id_train import train
    runs = tmp_path_factory.mktemp("runs")
    caches = {m: _cache(data, runs / f"cache-{m}", m) for m in MASKS}
    _cli(train.main, ["--cache", str(caches["off"]), "--model", str(T.tiny_unet()), "--out", str(runs / "base"),
                      "--full", "--ref-dropout", "1", "--rdrope-mode", "vanilla", "--steps", "600", "--lr", "2e-3",
                      "--name", "base", *FAST])
    folder = comfy.base_dir / "models" / "diffusion_models"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(runs / "base" / "base.safetensors", folder / "mv2id_test_people_base.safetensors")
    loras = comfy.base_dir / "models" / "loras"
    loras.mkdir(parents=True, exist_ok=True)
    for m, c in caches.items():          # mv2id-train's own RD-RoPE settings: rd, offset 1, first_index 1
        _cli(train.main, ["--cache", str(c), "--model", str(runs / "base" / "base.safetensors"), "--out",
                          str(runs / f"lora-{m}"), "--rank", "32", "--steps", "800", "--lr", "5e-3",
                          "--name", f"people_{m}", *FAST])
        shutil.copy(runs / f"lora-{m}" / f"people_{m}.safetensors", loras / f"mv2id_test_people_{m}.safetensors")
    from mv2id_train.cache_format import CachedDataset
    clips = [CachedDataset(caches["off"]).get(i)["video"] for i in range(len(COLORS))]
    for i, c in enumerate(COLORS):
        shutil.copy(data / f"person{i}.png", comfy.input_dir / f"mv2id_person{i}.png")
    return clips


def _sample(comfy, i: int, masks: str, variant: str) -> torch.Tensor:
    """The latent sampled for clip i in one variant: auto (the workflow), vanilla, no_refs."""
    g = Graph()
    model = g.add("UNETLoader", unet_name="mv2id_test_people_base.safetensors", weight_dtype="default")
    lora = f"mv2id_test_people_{masks}.safetensors"
    model = g.add("LoraLoaderModelOnly", model=model, lora_name=lora, strength_model=1.0)
    model = g.add("ModelSamplingSD3", model=model, shift=5.0)
    vae = g.add("VAELoader", vae_name=T.tiny_vae().name)
    pos = g.add("Mv2IDTestConditioning", seed=1, tokens=16)
    neg = g.add("Mv2IDTestConditioning", seed=2, tokens=16)
    imgs = [g.add("LoadImage", image=f"mv2id_person{j}.png")[0] for j in order(i)]
    batch = g.add("ImageBatch", image1=g.add("ImageBatch", image1=imgs[0], image2=imgs[1]), image2=imgs[2])
    cond = g.add("Mv2IDReferenceConditioning", positive=pos, negative=neg, vae=vae, reference_images=batch,
                 width=W, height=H, length=LENGTH, batch_size=1, fit="pad_white")
    rd = {"auto": ("auto", lora), "no_refs": ("auto", lora), "vanilla": ("vanilla", "none")}[variant]
    model = g.add("Mv2IDRDRoPE", model=model, mode=rd[0], offset=1.0, first_index=1, layout=cond[4], lora_name=rd[1])
    if variant == "no_refs":      # the same model, noise and text, without reference frames
        lat = g.add("KSampler", model=model, seed=SEED, steps=10, cfg=1.0, sampler_name="euler", scheduler="simple",
                    positive=pos, negative=neg, latent_image=cond[3], denoise=1.0)
    else:
        lat = g.add("Mv2IDSampler", model=model, positive=cond[0], negative_text=cond[1], negative_img_text=cond[2],
                    latent=cond[3], seed=SEED, steps=10, text_cfg=1.0, ref_cfg=1.0, ref_start=0.0, ref_end=1.0,
                    sampler_name="euler", scheduler="simple", denoise=1.0)
    name = f"people_{masks}_{i}_{variant}"
    g.add("Mv2IDTestSaveLatent", samples=lat, filename=name)
    entry = comfy.run(g.prompt())
    path = next(p for p in comfy.output_files(entry) if p.name == f"{name}.safetensors")
    return load_file(str(path))["samples"][0]


VARIANTS = ("auto", "vanilla", "no_refs")


@pytest.mark.parametrize("masks", list(MASKS))
def test_the_trained_positions_reproduce_the_clip(comfy, trained, masks):
    clips = trained
    dist = {}
    for i, clip in enumerate(clips):
        for variant in VARIANTS:
            out = _sample(comfy, i, masks, variant)
            assert out.shape == clip.shape and torch.isfinite(out).all()
            dist[i, variant] = float((out - clip).norm() / clip.norm())
    print(f"masks {masks}: distance to the clip " + "; ".join(
        f"{v} " + " ".join(f"{dist[i, v]:.3f}" for i in range(len(clips))) for v in VARIANTS))
    log = comfy.log_tail(3000)
    assert f"rd positions, offset 1, first_index 1: recorded in the LoRA mv2id_test_people_{masks}.safetensors" in log
    ratio = {v: [dist[i, v] / dist[i, "auto"] for i in range(len(clips))] for v in ("vanilla", "no_refs")}
    assert min(ratio["no_refs"]) >= 1.3, dist
    if masks == "off":
        assert min(ratio["vanilla"]) >= 1.2, dist
    else:
        assert min(ratio["vanilla"]) > 1.0 and sum(ratio["vanilla"]) / len(clips) >= 1.04, dist
