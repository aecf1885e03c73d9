"""Reference guidance (Phantom's three-pass CFG) and its step window.

Per step the model is run on three conditions:
    pos = text + references, mid = negative text + references, neg = negative text + zero refs
    noise = neg + s_ref * (mid - neg) + s_text * (pos - mid)
Inside the reference-guidance window all three passes run. Outside it the `neg` pass is
skipped and the step uses plain text CFG between pos and mid (both still see the references):
    noise = mid + s_text * (pos - mid)        (the formula above with s_ref = 1)
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class GuidanceConfig:
    """text_scale: s_text (Phantom default 7.5). ref_scale: s_ref (Phantom default 5.0).
    window: fraction [start, end) of the sampling steps in which reference guidance (the third
    model pass) runs. The default (0.0, 0.2) keeps it for the early steps, where pose and
    identity are laid down, and saves a third of the model calls on the rest.
    """
    text_scale: float = 7.5
    ref_scale: float = 5.0
    window_start: float = 0.0
    window_end: float = 0.2

    def __post_init__(self):
        if not (0.0 <= self.window_start <= 1.0 and 0.0 <= self.window_end <= 1.0):
            raise ValueError(f"reference window must lie in [0, 1], got [{self.window_start}, {self.window_end}]")
        if self.window_end < self.window_start:
            raise ValueError(f"reference window end ({self.window_end}) is before its start ({self.window_start})")


def step_index(sigma: float, sigmas: torch.Tensor) -> int:
    """Index of the sampling step that sigma belongs to.

    sigmas: the schedule [N+1] (decreasing, last is usually 0). A sigma between two entries
    (multi-stage samplers evaluate there) belongs to the step that starts above it.
    """
    s = sigmas.detach().float().cpu() if sigmas.device.type != "cpu" else sigmas.float()
    n = max(len(s) - 1, 1)
    above = torch.nonzero(s[:n] >= float(sigma) * (1 - 1e-5) - 1e-8).flatten()
    return int(above[-1]) if len(above) else 0


def in_window(step: int, num_steps: int, start: float, end: float) -> bool:
    """Step `step` of `num_steps` lies in [start, end) as a fraction of the steps (end=1 keeps all)."""
    if num_steps <= 0:
        return True
    frac = step / num_steps
    eps = 1e-9
    return (frac + eps >= start) and (frac + eps < end or end >= 1.0 - eps)


def window_steps(num_steps: int, start: float, end: float) -> list[int]:
    """The step indices in which the reference pass runs (handy for docs, tests, logging)."""
    return [i for i in range(num_steps) if in_window(i, num_steps, start, end)]
