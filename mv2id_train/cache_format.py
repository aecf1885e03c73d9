"""The latent cache that mv2id-train reads (written by mv2id-cache, or by tests directly).

<cache>/index.json
    {"format": "mv2id-cache", "version": 1, "settings": {...},
     "samples": [{"id": str, "shard": "shard-00000-of-00001.safetensors", "num_draws": D,
                  "video_shape": [16, F, h, w], "num_refs": K, "context_len": L, "caption": str}]}
<cache>/shard-*.safetensors
    "<id>/video"    [16, F, h, w]  Wan VAE latent of the training clip (as comfy's VAE.encode gives it)
    "<id>/refs/<d>" [16, K, h, w]  the K references, region-masked with mask draw d, each encoded on
                                   its own as one latent frame (as Mv2ID Reference Conditioning does)
    "<id>/context"  [L, 4096]      umT5 text embedding of the caption (CLIPLoader type "wan")

Latents are stored as the VAE returns them; the trainer moves them into the model's space with
Wan21 latent_format.process_in, as ComfyUI does for the video latent and for time_dim_concat.

What a sample must be for mv2id-train is one rule, check_sample: mv2id-cache applies it to every
tensor it writes and mv2id-train to every record of the index and every tensor it reads.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from mv2id_core import latents
from mv2id_core.cli.args import settings_changes
from mv2id_core.errors import InputError, UsageError

from .files import replacing, write_json

FORMAT = "mv2id-cache"
VERSION = 1
# the width of Wan 2.1's text context: umT5-XXL's embeddings, what WanModel.text_embedding takes
TEXT_DIM = 4096


class SampleError(InputError):
    """A cached sample that mv2id-train cannot use (wrong shape or values)."""


def context_problem(context_shape, text_dim: int = TEXT_DIM) -> str | None:
    """What is wrong with a text context of this shape for mv2id-train (None when nothing is): it must be
    [L, text_dim] with L >= 1 tokens."""
    ctx = list(context_shape) if context_shape is not None else None
    if ctx is None or len(ctx) != 2 or ctx[0] < 1 or ctx[1] != text_dim:
        return (f"text context {ctx} is not [tokens, {text_dim}]: Wan 2.1 reads umT5-XXL embeddings {text_dim} "
                f"wide (CLIPLoader type 'wan' with umt5_xxl_*.safetensors)")
    return None


def sample_problems(video_shape, refs_shape, context_shape, text_dim: int = TEXT_DIM) -> list[str]:
    """What is wrong with a sample of these shapes for mv2id-train (empty when nothing is):
    video [16, F, h, w] (F >= 1; h, w even: Wan's 2x2 patches), refs [16, K, h, w] (K >= 1 references,
    each the video's latent size), context [L, text_dim] (context_problem)."""
    c = latents.LATENT_CHANNELS
    video, refs = (list(x) if x is not None else None for x in (video_shape, refs_shape))
    out = []
    if video is None or len(video) != 4 or video[0] != c or min(video) < 1 or video[2] % 2 or video[3] % 2:
        out.append(f"video latent {video} is not [{c}, frames, h, w] with even h and w (a Wan 2.1 VAE latent of "
                   f"a clip whose width and height are multiples of {latents.PIXEL_MULTIPLE})")
    if refs is None or len(refs) != 4 or refs[0] != c or min(refs) < 1:
        out.append(f"reference latents {refs} are not [{c}, references, h, w] with at least one reference")
    elif video is not None and len(video) == 4 and refs[2:] != video[2:]:
        out.append(f"reference latents are {refs[2]}x{refs[3]} but the video latent is {video[2]}x{video[3]}: every "
                   f"reference must be fitted to the video size before encoding")
    problem = context_problem(context_shape, text_dim)
    return out + ([problem] if problem else [])


def check_sample(sample_id: str, video: torch.Tensor, refs: torch.Tensor, context: torch.Tensor,
                 text_dim: int = TEXT_DIM) -> None:
    """Raise SampleError naming the sample unless its tensors are what mv2id-train feeds the model:
    the shapes of sample_problems, and finite values."""
    problems = sample_problems(video.shape, refs.shape, context.shape, text_dim)
    for name, t in (("video latent", video), ("reference latents", refs), ("text context", context)):
        if not problems and not bool(torch.isfinite(t).all()):
            problems.append(f"NaN or infinite values in the {name}")
    if problems:
        raise SampleError(f"sample {sample_id}: {'; '.join(problems)}")


class CacheWriter:
    """Append samples; flushes a shard every `shard_size` samples. Call close() to write the index."""

    def __init__(self, out_dir, settings: dict | None = None, shard_size: int = 64, shard_tag: str = "00000-of-00001"):
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.settings = settings or {}
        self.shard_size = shard_size
        self.tag = shard_tag
        self.samples, self._pending, self._tensors, self._n_shards = [], [], {}, 0
        idx = self.out / f"index-{self.tag}.json"
        if idx.is_file():   # resume: keep what is already written, if it was made the same way
            old = json.loads(idx.read_text())
            changes = settings_changes(old.get("settings", {}), self.settings)
            if changes:
                raise UsageError(f"{self.out} holds a cache made with other settings ({'; '.join(changes)}); "
                                 f"samples made with different settings must not mix: use a new --out, or "
                                 f"delete {self.out} to start over")
            self.samples = old["samples"]
            self._n_shards = len({s["shard"] for s in self.samples})

    def done_ids(self) -> set:
        return {s["id"] for s in self.samples}

    def add(self, sample_id: str, video: torch.Tensor, refs: list[torch.Tensor], context: torch.Tensor, caption: str = "",
            extra: dict | None = None):
        sid = str(sample_id)
        if "/" in sid:
            raise ValueError(f"sample id must not contain '/': {sid!r}")
        for r in refs:
            check_sample(sid, video, r, context)
        self._tensors[f"{sid}/video"] = video.detach().float().cpu().contiguous().clone()
        for d, r in enumerate(refs):
            self._tensors[f"{sid}/refs/{d}"] = r.detach().float().cpu().contiguous().clone()
        self._tensors[f"{sid}/context"] = context.detach().float().cpu().contiguous().clone()
        self._pending.append({"id": sid, "num_draws": len(refs), "video_shape": list(video.shape),
                              "num_refs": int(refs[0].shape[1]), "refs_shape": list(refs[0].shape),
                              "context_len": int(context.shape[0]), "context_shape": list(context.shape),
                              "caption": caption, **(extra or {})})
        if len(self._pending) >= self.shard_size:
            self.flush()

    def flush(self):
        if not self._pending:
            return
        from safetensors.torch import save_file
        name = f"shard-{self.tag}-{self._n_shards:05d}.safetensors"
        with replacing(self.out / name) as tmp:
            save_file(self._tensors, str(tmp), metadata={"format": FORMAT})
        for s in self._pending:
            s["shard"] = name
        self.samples.extend(self._pending)
        self._pending, self._tensors = [], {}
        self._n_shards += 1
        self._write_index(self.out / f"index-{self.tag}.json")

    def _write_index(self, path):
        write_json(path, {"format": FORMAT, "version": VERSION, "settings": self.settings, "samples": self.samples})

    def close(self):
        self.flush()
        merge_indexes(self.out)


def merge_indexes(out_dir) -> Path:
    """index.json = the union of every index-<tag>.json (one per shard of a --shard i/n run)."""
    out = Path(out_dir)
    samples, settings = [], {}
    for p in sorted(out.glob("index-*.json")):
        d = json.loads(p.read_text())
        samples.extend(d["samples"])
        settings = settings or d.get("settings", {})
    write_json(out / "index.json", {"format": FORMAT, "version": VERSION, "settings": settings, "samples": samples})
    return out / "index.json"


class CachedDataset:
    """Random access to cached samples: ds.get(i, draw) -> {"video", "refs", "context"}, each checked by
    check_sample (the index records are checked when the cache is opened)."""

    def __init__(self, cache_dir, text_dim: int = TEXT_DIM):
        self.dir = Path(cache_dir)
        index = self.dir / "index.json"
        if not index.is_file():
            raise InputError(f"{index} not found: build the cache with mv2id-cache first")
        try:
            d = json.loads(index.read_text())
        except ValueError:
            d = {}
        if d.get("format") != FORMAT:
            raise InputError(f"{index} is not an Mv2ID latent cache (mv2id-cache writes one)")
        self.samples = d["samples"]
        self.settings = d.get("settings", {})
        if not self.samples:
            raise InputError(f"{index} lists no samples: mv2id-cache encoded none (see its error lines)")
        self.text_dim = text_dim
        for s in self.samples:
            self._check_record(index, s)
        self._files = {}

    def _check_record(self, index: Path, s: dict) -> None:
        """The shapes the index records, by the rule of check_sample (a cache of an older mv2id-cache records
        no reference or context shape: those tensors are checked when read)."""
        video = s.get("video_shape")
        refs = s.get("refs_shape", [latents.LATENT_CHANNELS, s.get("num_refs", 0), *(video or [0, 0, 0, 0])[2:]])
        ctx = s.get("context_shape", [s.get("context_len", 0), self.text_dim])
        problems = sample_problems(video, refs, ctx, self.text_dim)
        if problems:
            raise SampleError(f"{index}: sample {s.get('id')}: {'; '.join(problems)}. Rebuild the cache with "
                              f"mv2id-cache (the Wan 2.1 VAE and umT5-XXL embeddings)")

    def __len__(self):
        return len(self.samples)

    def _file(self, shard):
        f = self._files.get(shard)
        if f is None:
            from safetensors import safe_open
            f = self._files[shard] = safe_open(str(self.dir / shard), "pt")
        return f

    def get(self, i: int, draw: int = 0) -> dict:
        s = self.samples[i]
        f = self._file(s["shard"])
        sid = s["id"]
        out = {"video": f.get_tensor(f"{sid}/video"), "refs": f.get_tensor(f"{sid}/refs/{draw % s['num_draws']}"),
               "context": f.get_tensor(f"{sid}/context"), "id": sid}
        try:
            check_sample(sid, out["video"], out["refs"], out["context"], self.text_dim)
        except SampleError as e:
            raise SampleError(f"{self.dir / s['shard']}: {e}. Rebuild the cache with mv2id-cache") from None
        return out
