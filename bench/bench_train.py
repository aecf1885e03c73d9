"""Benchmark of mv2id-train: optimizer steps per second and peak memory (not a test).

Each configuration runs in its own process (so peak memory is its own) on a synthetic latent
cache of the requested video size (random latents; the trainer's work does not depend on
their values): a few warm-up steps, then timed steps.

  lora       LoRA rank 32 (default targets), gradient checkpointing
  lora_nockpt  the same without gradient checkpointing
  full       full fine-tuning, gradient checkpointing

  python bench/bench_train.py                       # tiny model on CPU (fp32), 64x48, 9 frames
  python bench/bench_train.py --preset 1.3b --width 832 --height 480 --length 81 --precision bf16   # CUDA
  python bench/bench_train.py --preset 14b-4blocks ...   # 4 of the 14B model's 40 blocks (CUDA)

The 14b-4blocks preset has the 14B model's width (5120, 40 heads, FFN 13824) but 4 of its 40
blocks, so the full model's step time is estimated as (t_4blocks - t_embed) * 10 + t_embed with
t_embed taken as negligible: an estimate, labelled as such in the results.

Peak memory: CUDA max allocated (torch.cuda.max_memory_allocated) on a GPU, else the process's
peak resident set size. The 1.3b preset writes random Wan 2.1 1.3B-shaped weights once
(tools/make_tiny_models.py, about 2.8 GB).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))   # the development tools (make_tiny_models, ...)

# 4 of the 14B model's 40 blocks: per-block cost at the real width without generating 28 GB of weights
SLICE_14B = dict(dim=5120, ffn_dim=13824, num_heads=40, num_layers=4, vae_dim=8,
                 unet_name="mv2id_random_wan21_t2v_14b_4blocks.safetensors",
                 vae_name="mv2id_tiny_wan21_vae.safetensors")

CONFIGS = {
    "lora": dict(full=False, gradient_checkpointing=True),
    "lora_nockpt": dict(full=False, gradient_checkpointing=False),
    "full": dict(full=True, gradient_checkpointing=True),
}


def _presets():
    import make_tiny_models
    make_tiny_models.PRESETS.setdefault("14b-4blocks", SLICE_14B)
    return make_tiny_models.PRESETS


def _models(a) -> Path:
    import make_tiny_models
    from mv2id_train.comfy_env import locate_comfyui
    _presets()
    dtype = "float32" if a.preset == "tiny" else "bfloat16"
    make_tiny_models.build(str(locate_comfyui()), a.models, a.preset, dtype_name=dtype)
    return Path(a.models) / "diffusion_models" / make_tiny_models.PRESETS[a.preset]["unet_name"]


def _cache(a, folder: Path) -> Path:
    import torch
    from mv2id_core.latents import latent_shape
    from mv2id_train.cache_format import CacheWriter
    g = torch.Generator().manual_seed(0)
    _, c, t, h, w = latent_shape(1, a.length, a.height, a.width)
    wr = CacheWriter(folder, {"synthetic": True})
    for i in range(2):
        wr.add(f"b{i}", torch.randn(c, t, h, w, generator=g), [torch.randn(c, a.refs, h, w, generator=g)],
               torch.randn(a.text_tokens, 4096, generator=g))
    wr.close()
    return folder


def run_one(a, name: str) -> dict:
    import torch
    from mv2id_train.train import Trainer, TrainConfig
    unet = _models(a)
    with tempfile.TemporaryDirectory(prefix="mv2id-bench-") as tmp:
        cache = _cache(a, Path(tmp) / "cache")
        cfg = TrainConfig(cache=str(cache), model=str(unet), out=str(Path(tmp) / "run"),
                          steps=a.warmup + a.steps, batch_size=a.batch_size, lr=1e-4, warmup=0, save_every=0,
                          rank=a.rank, precision=a.precision, progress=False, log_every=0, resume="none",
                          **CONFIGS[name])
        tr = Trainer(cfg)
        cuda = tr.d.cuda
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        times = []
        for step in range(cfg.steps):
            if cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            tr.train_step(step)
            if cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        timed = times[a.warmup:]
        peak = (torch.cuda.max_memory_allocated() if cuda
                else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
        params = sum(p.numel() for p in tr.model.parameters())
        trainable = sum(p.numel() for p in tr.model.parameters() if p.requires_grad)
        device = torch.cuda.get_device_name() if cuda else f"CPU ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"
    return {"config": name, "preset": a.preset, "device": device, "precision": ("bf16" if cuda else "fp32") if cfg.precision == "auto" else cfg.precision,
            "video": f"{a.width}x{a.height}x{a.length}", "refs": a.refs, "batch_size": a.batch_size,
            "params": params, "trainable": trainable,
            "s_per_step": round(sorted(timed)[len(timed) // 2], 4), "steps_per_s": round(len(timed) / sum(timed), 3),
            "peak_memory_gib": round(peak / 2**30, 3),
            "peak_kind": "cuda_max_allocated" if cuda else "process_peak_rss"}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="tiny", choices=sorted(_presets()))
    ap.add_argument("--models", default=str(ROOT / ".host" / "models"), help="where model files are (re)generated")
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--height", type=int, default=48)
    ap.add_argument("--length", type=int, default=9)
    ap.add_argument("--refs", type=int, default=3)
    ap.add_argument("--text-tokens", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--rank", type=int, default=32)
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    ap.add_argument("--steps", type=int, default=20, help="timed steps")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    ap.add_argument("--configs", default="lora,lora_nockpt,full")
    ap.add_argument("--single", help=argparse.SUPPRESS)
    ap.add_argument("--json", help="also write the results here")
    a = ap.parse_args(argv)
    if a.single:
        print("RESULT " + json.dumps(run_one(a, a.single)), flush=True)
        return 0
    results = []
    given = list(argv if argv is not None else sys.argv[1:])
    base = []
    while given:                      # every argument but --configs (and its value) goes to the children
        x = given.pop(0)
        if x == "--configs":
            given.pop(0)
        elif not x.startswith("--configs="):
            base.append(x)
    for name in a.configs.split(","):
        cmd = [sys.executable, __file__, *[x for x in base], "--single", name]
        p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        line = next((l for l in p.stdout.splitlines() if l.startswith("RESULT ")), None)
        if line is None:
            print(f"{name}: failed\n{p.stderr[-3000:]}", file=sys.stderr)
            continue
        r = json.loads(line[len("RESULT "):])
        results.append(r)
        print(f"{name:12s} {r['s_per_step']:.4f} s/step  {r['steps_per_s']:.2f} steps/s  peak {r['peak_memory_gib']:.2f} GiB "
              f"({r['peak_kind']})  trainable {r['trainable']:,}/{r['params']:,}  [{r['device']}, {r['precision']}]")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
