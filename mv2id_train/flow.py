"""Wan 2.1 flow matching: timestep sampling, noising, target and loss.

x_t = (1 - s) x0 + s * noise, target = noise - x0 (velocity), model timestep = s * 1000 - the
same parameterisation ComfyUI's flow model sampling (CONST, multiplier 1000) uses at inference.
Timesteps follow Wan's training scheduler (as in DiffSynth-Studio, the trainer Wan points to):
a uniform draw over 1000 training timesteps u in (0, 1], then the timestep shift
s = shift * u / (1 + (shift - 1) * u) with shift 5 by default. Optional "bell" loss weighting is
DiffSynth's per-timestep weight exp(-2 ((t - 500) / 1000)^2), normalised over the 1000 steps
(off by default: plain MSE).

Every random draw is a function of (seed, step, global sample index) only, so a run gives the
same numbers however it is split over processes and however often it is resumed.
"""
from __future__ import annotations

import math

import torch

NUM_TRAIN_TIMESTEPS = 1000
LOSS_WEIGHTINGS = ("none", "bell")


def shift_sigma(u: torch.Tensor, shift: float) -> torch.Tensor:
    return shift * u / (1.0 + (shift - 1.0) * u)


def sample_generator(seed: int, step: int, index: int) -> torch.Generator:
    return torch.Generator().manual_seed((int(seed) * 1_000_003 + int(step) * 65_537 + int(index) * 257 + 17) % (2**63))


def draw(seed: int, step: int, index: int, shape, shift: float):
    """(sigma scalar tensor, noise [shape]) for one sample of one step; CPU float32."""
    g = sample_generator(seed, step, index)
    k = int(torch.randint(0, NUM_TRAIN_TIMESTEPS, (1,), generator=g))
    u = 1.0 - k / NUM_TRAIN_TIMESTEPS                  # the grid 1, 0.999, ..., 0.001 (sigma_min 0)
    sigma = shift_sigma(torch.tensor(u, dtype=torch.float64), shift).float()
    noise = torch.randn(tuple(shape), generator=g)
    return sigma, noise


def bell_weight(sigma: torch.Tensor) -> torch.Tensor:
    grid = torch.linspace(0, 999, NUM_TRAIN_TIMESTEPS, dtype=torch.float64)
    norm = torch.exp(-2.0 * ((grid - 500.0) / 1000.0) ** 2).mean()
    t = sigma.double() * 1000.0
    return (torch.exp(-2.0 * ((t - 500.0) / 1000.0) ** 2) / norm).float()


def noised(x0: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor):
    s = sigma.view(-1, *([1] * (x0.ndim - 1))).to(x0.dtype)
    return (1.0 - s) * x0 + s * noise, noise - x0


def loss_fn(pred: torch.Tensor, target: torch.Tensor, sigma: torch.Tensor, weighting: str = "none") -> torch.Tensor:
    """Mean over the local batch of per-sample MSE over video tokens (references never reach here)."""
    per = (pred.float() - target.float()).pow(2).flatten(1).mean(1)
    if weighting == "bell":
        per = per * bell_weight(sigma).to(per.device)
    elif weighting not in LOSS_WEIGHTINGS:
        raise ValueError(f"loss weighting must be one of {LOSS_WEIGHTINGS}, got {weighting!r}")
    return per.mean()


def lr_at(step: int, lr: float, warmup: int, schedule: str = "constant", total: int = 0, min_ratio: float = 0.0) -> float:
    """Linear warm-up over `warmup` steps, then constant or cosine decay to min_ratio * lr."""
    if warmup > 0 and step < warmup:
        return lr * (step + 1) / warmup
    if schedule == "cosine" and total > warmup:
        p = min(1.0, (step - warmup) / max(1, total - warmup))
        return lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * p)))
    return lr
