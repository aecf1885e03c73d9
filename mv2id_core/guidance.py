"""Reference guidance (Phantom's three-pass CFG), its step window, and what runs outside it.

Per step the model is run on up to three conditions:
    pos = text + references, mid = negative text + references, neg = negative text + zero refs
Inside the reference-guidance window all three passes run (Phantom's formula):
    noise = neg + s_ref * (mid - neg) + s_text * (pos - mid)
Outside it the `neg` pass is skipped, and the user chooses what runs:
    text_cfg  two passes, plain text CFG between pos and mid (both still see the references):
              noise = mid + s_text * (pos - mid)        (the formula above with s_ref = 1)
    no_cfg    one pass, noise = pos: for distilled few-step LoRAs (lightx2v, CausVid) that are
              run at cfg 1, where a second pass costs time and changes nothing they were trained for.
A step's mode is decided per sampling step (never per model evaluation), so a multi-stage sampler
(Heun, DPM++ 2S) uses one mode for all evaluations of one step.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .errors import check_choice

# what runs outside the reference window; the first is the default (the pack's behaviour before the choice existed)
OUTSIDE_MODES = ("text_cfg", "no_cfg")
# the modes of one step: three passes, or one of OUTSIDE_MODES
REFERENCE = "reference"
# the conditions of a step, in the order the guider passes them to the model (positive last, see the guider):
# neg = negative text + zero references, mid = negative text + references, pos = text + references
CONDITIONS = ("negative", "middle", "positive")


@dataclass(frozen=True)
class GuidanceConfig:
    """text_scale: s_text (Phantom default 7.5). ref_scale: s_ref (Phantom default 5.0).
    window: fraction [start, end) of the sampling steps in which reference guidance (the third
    model pass) runs. The default (0.0, 0.2) keeps it for the early steps, where pose and
    identity are laid down, and saves a third of the model calls on the rest (Phantom's own
    inference runs it on every step: window 0..1).
    outside: what runs on the steps outside the window (OUTSIDE_MODES).
    """
    text_scale: float = 7.5
    ref_scale: float = 5.0
    window_start: float = 0.0
    window_end: float = 0.2
    outside: str = OUTSIDE_MODES[0]

    def __post_init__(self):
        if not (0.0 <= self.window_start <= 1.0 and 0.0 <= self.window_end <= 1.0):
            raise ValueError(f"reference window must lie in [0, 1], got [{self.window_start}, {self.window_end}]")
        if self.window_end < self.window_start:
            raise ValueError(f"reference window end ({self.window_end}) is before its start ({self.window_start})")
        check_choice(self.outside, OUTSIDE_MODES, "guidance outside the window")

    @property
    def covers_all_steps(self) -> bool:
        return self.window_start <= 0.0 and self.window_end >= 1.0

    def step_mode(self, step: int, num_steps: int) -> str:
        """REFERENCE inside the window, else self.outside."""
        if self.covers_all_steps or in_window(step, num_steps, self.window_start, self.window_end):
            return REFERENCE
        return self.outside

    def text_scale_in(self, mode: str) -> float:
        """The text scale of a step of `mode`: s_text, except 1 in a no_cfg step (one pass, no CFG)."""
        return 1.0 if mode == "no_cfg" else self.text_scale

    def conditions(self, mode: str, cfg1_shortcut: bool = True) -> tuple[str, ...]:
        """The conditions (CONDITIONS, in that order) a step of `mode` runs the model on: the one rule for
        which passes run, used by the guider and by every pass count. The zero-reference `negative` runs
        only in REFERENCE steps; with ComfyUI's cfg-1 shortcut (on unless a model option disables it) a
        scale of exactly 1 needs no pass for the condition it would subtract."""
        if mode == REFERENCE:
            skip = set()
            if cfg1_shortcut and math.isclose(self.ref_scale, 1.0):
                skip = {"negative", "middle"} if math.isclose(self.text_scale, 1.0) else {"negative"}
        else:
            skip = {"negative"}
            if cfg1_shortcut and math.isclose(self.text_scale_in(mode), 1.0):
                skip.add("middle")
        return tuple(c for c in CONDITIONS if c not in skip)

    def passes(self, step: int, num_steps: int) -> int:
        """Model passes (batch entries) of step `step` (per model call: under context windows, per window)."""
        return len(self.conditions(self.step_mode(step, num_steps)))


class StepTracker:
    """Which sampling step each model evaluation belongs to, from the sampler's own step callback.

    ComfyUI's samplers call back once per step, right after the step's first evaluation (at
    sigmas[i]); a step's further evaluations (a DPM++ 2S / SDE midpoint, a Heun corrector) come
    after that callback and before the next step's first evaluation. So after the callback of
    step c an evaluation belongs to step c, except the first evaluation of step c+1, which is at
    exactly sigmas[c+1]. Heun-like samplers evaluate their corrector there too, before the next
    step: for them (`corrects_at_next_sigma`) the first evaluation at sigmas[c+1] is still step c.
    None means unknown: assume not, and learn it when a second evaluation at sigmas[c+1] comes
    before the next callback. Before the first callback the sigma's place in the schedule decides.

    sigmas: the run's schedule [N+1] (decreasing, last usually 0).
    """

    def __init__(self, sigmas, corrects_at_next_sigma: bool | None = None):
        self.sigmas = [float(s) for s in sigmas]
        self.num_steps = max(len(self.sigmas) - 1, 0)
        self.corrects_at_next_sigma = corrects_at_next_sigma
        self._called_back = -1
        self._at_next = 0      # evaluations at sigmas[c+1] since the callback of step c

    def callback(self, i: int) -> None:
        if int(i) > self._called_back:
            self._called_back, self._at_next = int(i), 0

    def evaluation(self, sigma: float) -> int:
        """The step of a model evaluation at `sigma` (call in evaluation order)."""
        c = self._called_back
        if c < 0:
            return min(step_index(sigma, torch.tensor(self.sigmas)), max(self.num_steps - 1, 0))
        nxt = c + 1
        if nxt < self.num_steps and math.isclose(float(sigma), self.sigmas[nxt], rel_tol=1e-6, abs_tol=1e-9):
            self._at_next += 1
            if self._at_next == 2 and self.corrects_at_next_sigma is None:
                self.corrects_at_next_sigma = True      # learned: the first one was a corrector
            if self.corrects_at_next_sigma and self._at_next == 1:
                return c
            return nxt
        return min(c, max(self.num_steps - 1, 0))


def step_index(sigma: float, sigmas: torch.Tensor) -> int:
    """Index of the sampling step that sigma belongs to (used only when no step callback is
    available, e.g. a guider called outside ComfyUI's samplers).

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


def inert_inputs(config: GuidanceConfig, num_steps: int | None = None, add_noise: bool = True) -> dict[str, str]:
    """The inputs these settings make inert, or use only on some steps -> {input name: "no effect: why" or
    "used only ..."}: the one rule the Guider and Sampler nodes log.

    num_steps: the steps the guidance runs for (None when unknown, e.g. in the Guider node: then only the
    rules that hold for any step count apply). add_noise False: the sampler draws no noise (seed unused)."""
    out: dict[str, str] = {}
    window = f"ref_start {config.window_start:g} .. ref_end {config.window_end:g}"
    inside = None if num_steps is None else sum(config.step_mode(i, num_steps) == REFERENCE for i in range(num_steps))
    of = "" if num_steps is None else f" of the {num_steps} steps"
    empty = config.window_end <= config.window_start and not config.covers_all_steps
    if empty or inside == 0:
        fix = ("set ref_end above ref_start" if empty else
               f"widen it to hold a step (step i sits at the fraction i/{num_steps} of the steps)")
        out["ref_cfg"] = (f"no effect: the reference window {window} holds no step{of}, so reference guidance "
                          f"never runs: {fix} to use it")
        if config.outside == "no_cfg":
            out["text_cfg"] = ("no effect: outside_window no_cfg runs only the positive pass outside the window, "
                               "and no step is inside it: no text guidance at all")
    elif config.covers_all_steps or (inside is not None and inside == num_steps):
        out["outside_window"] = f"no effect: the reference window {window} covers every step" + (
            "" if num_steps is None else f" (all {num_steps})")
    elif config.outside == "no_cfg":
        out["text_cfg"] = (f"used only on the steps inside the reference window {window}"
                           + ("" if inside is None else f" ({inside}{of})")
                           + "; outside_window no_cfg runs only the positive pass on the others")
    if "ref_cfg" not in out and math.isclose(config.ref_scale, 1.0) and config.outside == "text_cfg":
        out["ref_start"] = out["ref_end"] = ("no effect: ref_cfg 1 turns reference guidance off, so every step "
                                             "runs text CFG inside the window as outside it")
    if not add_noise:
        out["seed"] = "no effect: add_noise disable draws no noise (the latent's leftover noise is sampled)"
    return out
