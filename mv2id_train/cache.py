"""mv2id-cache: encode a training manifest once into a latent cache (see cache_format).

    mv2id-cache --manifest DATA/manifest.jsonl --vae wan_2.1_vae.safetensors \
        (--text-encoder umt5_xxl_fp16.safetensors | --context-file contexts.safetensors) \
        --out CACHE [--width 832 --height 480] [--mask-draws 4 --mask-ratio 0.6 --mask-block 32] [--shard i/n]

Video clips: the manifest's frames, resized and centre-cropped to width x height, VAE-encoded.
References: each crop region-masked over its own pixels (mv2id_core.region_masks, exactly what
the Mv2ID Region Mask node does to an image: --mask-ratio of every reference hidden in
--mask-block pixel blocks, --mask-draws independent seeded draws), then fitted to the video size
on white (pad_white, as Mv2ID Reference Conditioning does by default; the padding is not part of
the masked share) and encoded on its own as one latent frame.
Captions: umT5 through ComfyUI's text-encoder loader (CLIPLoader type "wan"), so the trainer
never holds the text encoder. Without a text encoder, --context-file gives precomputed
embeddings: a safetensors file with a tensor per sample id and/or "default" ([L, 4096]), e.g.
written by an earlier --text-encoder run (--save-contexts). Resumable: samples already in the
cache are skipped.
Every sample is checked against what mv2id-train needs (cache_format.check_sample: 16-channel Wan 2.1
latents, at least one reference of the video's latent size, a [tokens, 4096] text context, finite
values) before it is written; a sample that fails stops the run with one line, since the models or
embeddings that made it would make every sample unusable.
"""
from __future__ import annotations

import argparse
import json
import sys
import zlib
from pathlib import Path

import numpy as np
import torch

from mv2id_core import latents
from mv2id_core import references as core_refs
from mv2id_core.cli import args as A
from mv2id_core.errors import InputError, Mv2IDError, UsageError
from mv2id_core.region_masks import check_complementary, mask_references

from . import progress_bar
from .cache_format import CacheWriter, SampleError, context_problem
from .comfy_env import import_comfy
from .files import read_jsonl

PROG = "mv2id-cache"
# Mask draws cached per sample. The paper draws a new mask every time a reference is used; a
# cache keeps a fixed number and epoch e uses draw e mod MASK_DRAWS. A typical run sees its data
# a few times (e.g. 22K clips, 5000 steps x global batch 16 = 3.6 epochs), so 4 draws give every
# epoch of such a run fresh masks, for 4 reference latents per sample (about 1.2 MB each at
# 832x480 with 3 references, fp32).
MASK_DRAWS = 4


def load_vae(path):
    """A ComfyUI VAE from `path`, checked to be the Wan 2.1 VAE by the nodes' own rule (vae_geometry)."""
    comfy = import_comfy()
    import comfy.sd
    try:
        sd, metadata = comfy.utils.load_torch_file(str(path), safe_load=True, return_metadata=True)
        vae = comfy.sd.VAE(sd=sd, metadata=metadata)
        vae.throw_exception_if_invalid()
    except Exception as e:
        raise UsageError(f"cannot load the VAE {path} ({type(e).__name__}: {e}); give the Wan 2.1 VAE, "
                         f"e.g. wan_2.1_vae.safetensors") from None
    from mv2id_core.comfyui.wan import vae_geometry
    vae_geometry(vae, f"--vae {path}", "Give the Wan 2.1 VAE, e.g. --vae wan_2.1_vae.safetensors")
    return vae


def load_text_encoder(path):
    comfy = import_comfy()
    import comfy.sd
    try:
        return comfy.sd.load_clip(ckpt_paths=[str(path)], clip_type=comfy.sd.CLIPType.WAN)
    except Exception as e:
        raise UsageError(f"cannot load the text encoder {path} ({type(e).__name__}: {e}); give umT5-XXL, "
                         f"e.g. umt5_xxl_fp16.safetensors") from None


def encode_caption(clip, text: str) -> torch.Tensor:
    """[L, 4096]: what CLIPTextEncode puts into the conditioning for this text."""
    cond = clip.encode_from_tokens(clip.tokenize(text))
    return cond[0].float().cpu()


def fit_frames(frames: np.ndarray | torch.Tensor, width: int, height: int) -> torch.Tensor:
    """[F, H, W, 3] uint8 or float -> [F, height, width, 3] float 0..1, resized and centre-cropped."""
    x = torch.as_tensor(np.asarray(frames))
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
    return core_refs.fit_references(x.float(), width, height, "center_crop")


def encode_video(vae, frames: torch.Tensor) -> torch.Tensor:
    """[F, H, W, 3] (F = 4n+1) -> [16, (F-1)/4+1, H/8, W/8]."""
    latents.check_length(frames.shape[0])
    return vae.encode(frames)[0].float().cpu()


def mask_seed(sample_id: str, draw: int, seed: int = 0) -> int:
    return (zlib.crc32(sample_id.encode()) * 1009 + draw * 7 + seed * 1_000_003) % (2**62)


def masked_references(refs: torch.Tensor, width: int, height: int, ratio: float, block: int, seed: int,
                      complementary: bool = False) -> torch.Tensor:
    """refs [K, H, W, 3] float 0..1 -> [K, height, width, 3]: `ratio` of every reference's own
    pixels hidden (white) in block x block squares, then fitted to the video size on white: the
    Region Mask node followed by Reference Conditioning (pad_white). ratio 0: no masking."""
    if ratio > 0:
        refs, _ = mask_references(refs, ratio, block, seed, fill=1.0, complementary=complementary)
    return core_refs.fit_references(refs, width, height, "pad_white")


def encode_references(vae, refs: torch.Tensor, width: int, height: int, draws: int, ratio: float, block: int,
                      sample_id: str, seed: int = 0, complementary: bool = False) -> list[torch.Tensor]:
    """refs [K, H, W, 3] float -> `draws` latents [16, K, h, w], each from an independent mask draw."""
    out = []
    for d in range(draws):
        imgs = masked_references(refs, width, height, ratio, block, mask_seed(sample_id, d, seed), complementary)
        lat = core_refs.encode_references(imgs, lambda img: vae.encode(img))
        out.append(lat[0].float().cpu())
    return out


def build_parser():
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=A.HelpFormatter)
    ap.add_argument("--manifest", required=True, type=A.existing_file, help="manifest.jsonl written by mv2id-data")
    ap.add_argument("--vae", required=True, type=A.existing_file, help="Wan 2.1 VAE (.safetensors)")
    ap.add_argument("--text-encoder", type=A.existing_file,
                    help="umT5-XXL text encoder (.safetensors), loaded as CLIPLoader type 'wan'")
    ap.add_argument("--context-file", type=A.existing_file,
                    help="precomputed text embeddings (safetensors: <sample id> or 'default' -> [L, 4096])")
    ap.add_argument("--save-contexts", help="also write the computed embeddings to this safetensors file")
    ap.add_argument("--out", required=True, type=A.out_dir, help="cache folder")
    ap.add_argument("--width", type=A.positive_int, default=832, help="video width (multiple of 16)")
    ap.add_argument("--height", type=A.positive_int, default=480, help="video height (multiple of 16)")
    ap.add_argument("--mask-draws", type=A.positive_int, default=MASK_DRAWS,
                    help="independent region-mask draws per sample; epoch e trains on draw e mod this, so a "
                         "run of up to this many epochs never repeats a mask (default %(default)s)")
    ap.add_argument("--mask-ratio", type=A.fraction, default=0.6,
                    help="hidden fraction of every reference's own pixels (the paper: 0.6; 0: no masking)")
    ap.add_argument("--mask-block", type=A.positive_int, default=32, help="mask block size in reference pixels")
    ap.add_argument("--mask-complementary", action="store_true", help="keep every block visible in some view")
    ap.add_argument("--seed", type=A.nonnegative_int, default=0)
    ap.add_argument("--shard", type=A.shard, default=(0, 1), help="i/n: this machine's share of the samples")
    ap.add_argument("--shard-size", type=A.positive_int, default=64, help="samples per safetensors shard file")
    ap.add_argument("--no-progress", dest="progress", action="store_false")
    return ap


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    try:
        return run(a)
    except (Mv2IDError, OSError) as e:
        print(A.error_line(PROG, e), file=sys.stderr)
        return 2


def check_args(a) -> None:
    """Refuse settings mv2id-train cannot use before any file is read."""
    try:
        latents.check_size(a.width, a.height)
    except InputError as e:
        raise UsageError(f"--width/--height: {e}") from None
    if not a.text_encoder and not a.context_file:
        raise UsageError("give --text-encoder (umT5) or --context-file (precomputed embeddings)")


# what a manifest row must hold (mv2id-data writes every one of them)
ROW_FIELDS = ("id", "video", "frame_indices", "references")


def row_problem(r) -> str:
    """What makes one manifest row unusable ('' when nothing does): a missing field, no frames, no references."""
    if not isinstance(r, dict):
        return f"is {type(r).__name__}, not an object"
    missing = [k for k in ROW_FIELDS if k not in r]
    if missing:
        return f"has no {', '.join(missing)}"
    for k, what in (("frame_indices", "frame indices"), ("references", "reference crops")):
        if not isinstance(r[k], list) or not r[k]:
            return f"lists no {what} ({k}: {json.dumps(r[k])}): every clip needs at least one"
    return ""


def manifest_rows(a) -> tuple[Path, list[dict]]:
    """(manifest path, this shard's rows); refuses an empty manifest, a row it cannot encode, and impossible
    complementary masks, before any model is loaded."""
    manifest = Path(a.manifest)
    rows = read_jsonl(manifest, repair=False)
    if not rows:
        raise UsageError(f"{manifest} lists no clips: run mv2id-data first (its summary.json says why videos were dropped)")
    for n, r in enumerate(rows, 1):
        problem = row_problem(r)
        if problem:
            who = f"sample {r['id']}" if isinstance(r, dict) and "id" in r else f"row {n}"
            raise UsageError(f"{manifest}: {who} {problem}; give each clip {', '.join(ROW_FIELDS)} as mv2id-data "
                             f"writes them")
    if a.mask_complementary and a.mask_ratio > 0:
        for k in sorted({len(r["references"]) for r in rows}):
            try:
                check_complementary(k, a.mask_ratio)
            except InputError as e:
                raise UsageError(f"--mask-complementary: {e}") from None
    i, n = a.shard
    return manifest, [r for k, r in enumerate(rows) if k % n == i]


def read_contexts(path) -> dict[str, torch.Tensor]:
    """The embeddings of --context-file (sample id or "default" -> [L, 4096]), every one checked by the cache's
    own rule before any clip is encoded."""
    from safetensors import safe_open
    if not path:
        return {}
    try:
        with safe_open(str(path), "pt") as f:
            contexts = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:   # safetensors raises its own error type for a file of another format
        raise UsageError(f"--context-file {path} is not a safetensors file ({type(e).__name__}: {e})") from None
    for k, v in contexts.items():
        problem = context_problem(v.shape[1:] if v.ndim == 3 and v.shape[0] == 1 else v.shape)
        if problem:
            raise UsageError(f"--context-file {path}: '{k}': {problem}; write [tokens, 4096] umT5 embeddings (or "
                             f"give --text-encoder umt5_xxl_fp16.safetensors)")
    return contexts


class Encoder:
    """Turns one manifest row into the tensors of one cached sample (video latent, reference latents for
    every mask draw, text context)."""

    def __init__(self, a, manifest: Path):
        self.a, self.manifest = a, manifest
        self.vae = load_vae(a.vae)
        self.clip = load_text_encoder(a.text_encoder) if a.text_encoder else None
        self.contexts = read_contexts(a.context_file)
        self.saved = {}      # sample id -> the context the text encoder gave (--save-contexts)

    def context(self, r: dict) -> torch.Tensor:
        if self.clip is not None:
            ctx = self.saved[r["id"]] = encode_caption(self.clip, r.get("caption") or "")
        elif r["id"] in self.contexts:
            ctx = self.contexts[r["id"]]
        elif "default" in self.contexts:
            ctx = self.contexts["default"]
        else:
            raise KeyError(f"no embedding for sample {r['id']} (and no 'default') in {self.a.context_file}")
        return ctx[0] if ctx.ndim == 3 else ctx

    def encode(self, r: dict):
        """-> (video latent, [reference latents per mask draw], context)."""
        from mv2id_core.photos import read_photo
        from mv2id_core.video_io import read_frames
        a = self.a
        idx = [int(k) for k in r["frame_indices"]]
        frames, _ = read_frames(r["video"], idx)
        by_index = dict(zip(sorted(set(idx)), frames))   # indices repeat when train fps > source fps
        if len(by_index) != len(set(idx)):
            raise InputError(f"{r['video']} has fewer frames than the manifest expects")
        video = encode_video(self.vae, fit_frames(np.stack([by_index[k] for k in idx]), a.width, a.height))
        ref_paths = [p if Path(p).is_absolute() else str(self.manifest.parent / p) for p in r["references"]]
        photos = [read_photo(p).rgb for p in ref_paths]
        sizes = [f"{Path(p).name} {ph.shape[1]}x{ph.shape[0]}" for p, ph in zip(ref_paths, photos)]
        if len({ph.shape for ph in photos}) > 1:      # masked over their own pixels as one batch, as Face Views' crops
            raise InputError(f"reference crops differ in size ({', '.join(sizes)}): give crops of one size, as "
                             f"mv2id-data writes them (--ref-size) and Face Views makes them")
        refs = torch.from_numpy(np.stack(photos)).float() / 255.0
        ref_lat = encode_references(self.vae, refs, a.width, a.height, a.mask_draws, a.mask_ratio, a.mask_block,
                                    r["id"], a.seed, a.mask_complementary)
        return video, ref_lat, self.context(r)


def run(a) -> int:
    from safetensors.torch import save_file
    check_args(a)
    manifest, rows = manifest_rows(a)
    enc = Encoder(a, manifest)     # loads and checks the models and embeddings before anything is written
    i, n = a.shard
    settings = {"width": a.width, "height": a.height, "mask_draws": a.mask_draws, "mask_ratio": a.mask_ratio,
                "mask_block": a.mask_block, "mask_complementary": a.mask_complementary, "seed": a.seed,
                "vae": Path(a.vae).name, "text_encoder": Path(a.text_encoder).name if a.text_encoder else None,
                "manifest": str(manifest.resolve()), "shards": n}
    writer = CacheWriter(a.out, settings, shard_size=a.shard_size, shard_tag=f"{i:05d}-of-{n:05d}")
    done = writer.done_ids()
    todo = [r for r in rows if r["id"] not in done]
    bar = progress_bar(a.progress, len(rows), len(rows) - len(todo), PROG, "clip")
    failed = 0
    for r in todo:
        try:
            video, ref_lat, ctx = enc.encode(r)
            writer.add(r["id"], video, ref_lat, ctx, r.get("caption") or "", {"video": r["video"]})
        except SampleError:
            raise        # what the encoders give is unusable for training: every sample would be, so stop
        except Exception as e:  # one bad clip must not stop a long run
            failed += 1
            why = str(e) if isinstance(e, Mv2IDError) else f"{type(e).__name__}: {e}"   # the pack's own say what
            print(f"{PROG}: {r['id']}: {why}", file=sys.stderr)
        if bar is not None:
            bar.update(1)
    writer.close()
    if bar is not None:
        bar.close()
    if a.save_contexts and enc.saved:
        save_file({k: v.contiguous() for k, v in enc.saved.items()}, a.save_contexts)
    print(json.dumps({"cache": str(Path(a.out) / "index.json"), "samples": len(writer.samples), "failed": failed}))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
