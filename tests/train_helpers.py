"""Shared helpers for the training tests: tiny-model paths and a small latent cache built with
the real tiny Wan VAE through mv2id_train.cache (the same functions mv2id-cache runs)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

import comfy_server
import workflow_api

ROOT = Path(__file__).resolve().parent.parent
W, H, LENGTH, REFS = 64, 48, 9, 3


def host():
    return comfy_server.HostConfig.from_env()


def tiny_unet() -> Path:
    return host().tiny_models / "diffusion_models" / workflow_api.TINY_UNET


def tiny_vae() -> Path:
    return host().tiny_models / "vae" / workflow_api.TINY_VAE


def synthetic_clip(seed: int, length: int = LENGTH, w: int = W, h: int = H) -> torch.Tensor:
    """[F, H, W, 3] float: a bright disc moving over a coloured gradient (something a VAE can code)."""
    g = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([xx / w, yy / h, np.full_like(xx, g.random())], -1)
    frames = []
    for f in range(length):
        cx, cy = w * (0.3 + 0.4 * f / length), h * (0.5 + 0.1 * np.sin(f))
        disc = ((xx - cx) ** 2 + (yy - cy) ** 2 < (h / 5) ** 2)[..., None]
        frames.append(np.where(disc, np.array([1.0, 0.9, 0.8], np.float32), base))
    return torch.from_numpy(np.stack(frames)).float()


def make_cache(out: Path, n: int = 1, draws: int = 2, ctx_len: int = 8, seed: int = 0) -> Path:
    from mv2id_train import cache as C
    from mv2id_train.cache_format import CacheWriter
    vae = C.load_vae(tiny_vae())
    wr = CacheWriter(out, {"width": W, "height": H, "mask_draws": draws})
    for i in range(n):
        clip = synthetic_clip(seed + i)
        video = C.encode_video(vae, clip)
        refs = clip[[0, LENGTH // 2, LENGTH - 1]]
        ref_lat = C.encode_references(vae, refs, W, H, draws, 0.6, 16, f"s{i}")
        ctx = torch.randn(ctx_len, 4096, generator=torch.Generator().manual_seed(100 + i))
        wr.add(f"s{i}", video, ref_lat, ctx, caption=f"sample {i}")
    wr.close()
    return out


@torch.no_grad()
def eval_loss(trainer, draws: int = 8, seed: int = 12345) -> float:
    """The flow-matching loss of a Trainer's model on fixed (noise, timestep) draws of the first samples, mask
    draw 0 of the references: a deterministic number to compare before and after training."""
    from mv2id_train import flow, wan
    cfg, dev = trainer.cfg, trainer.d.device
    was = trainer.model.training
    trainer.model.eval()
    total = 0.0
    for k in range(draws):
        s = trainer.ds.get(k % len(trainer.ds), draw=0)
        x0 = trainer.latent_format.process_in(s["video"].float()[None])
        r = trainer.latent_format.process_in(s["refs"].float()[None])
        sigma, noise = flow.draw(seed, k, 0, x0.shape, cfg.shift)
        x_t, target = flow.noised(x0, noise, sigma.view(1))
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=trainer.autocast):
            dt = trainer.input_dtype
            pred = wan.model_forward(trainer.model, x_t.to(dev, dt), sigma.view(1).to(dev),
                                     s["context"][None].to(dev, dt), r.to(dev, dt), trainer.options)
        total += float(flow.loss_fn(pred, target.to(dev), sigma.view(1), cfg.loss_weighting))
    trainer.model.train(was)
    return total / draws


def read_log(out: Path) -> list[dict]:
    return [json.loads(l) for l in (Path(out) / "log.jsonl").read_text().splitlines() if l.strip()]


def train_args(cache: Path, out: Path, steps: int, **kw) -> list[str]:
    args = ["--cache", str(cache), "--model", str(tiny_unet()), "--out", str(out), "--steps", str(steps),
            "--no-progress", "--save-dtype", "fp32"]
    for k, v in kw.items():
        flag = "--" + k.replace("_", "-")
        if v is True:
            args.append(flag)
        else:
            args += [flag, str(v)]
    return args


def run_cli(module: str, args: list[str], nproc: int = 0, timeout: float = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if nproc:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
               "-m", module, *args]
    else:
        cmd = [sys.executable, "-m", module, *args]
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-5000:]}")
    return p
