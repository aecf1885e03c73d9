"""Benchmark: memory and time per sampling step against video length, with and without core context
windows, measured side by side in one run (not a test).

For each length (81, 161, 241, 481 frames by default) the Mv2ID path (three references, RD-RoPE rd, the
Mv2ID guider with reference guidance on every step: 3 passes per model evaluation) samples the video once
as one piece and once in core Wan Context Windows (81-frame windows, overlap 32, standard_static, pyramid,
no FreeNoise), the two back to back for each length.

- s/step: median over --rounds of the mean time of the steps after the first of --steps Euler steps (the
  first step also loads and patches the model, and builds RD-RoPE's frequency cache for the shape), the two
  configurations alternating which goes first; also the process's CPU seconds per step, which other work
  on a shared machine disturbs less than the wall time.
- peak: on a GPU torch.cuda.max_memory_allocated while sampling (weights included); on the CPU the rise of
  the process's peak resident memory (VmHWM, reset before each run through /proc/self/clear_refs, after
  malloc_trim has handed freed memory back) over its resident memory before the run, i.e. what sampling
  needs beyond the weights and inputs already held (Linux only).
- windows/step: the windows core runs per model evaluation (one when the video fits in one window).
- attention: the attention function ComfyUI selected (comfy.ldm.modules.attention.optimized_attention).

  python bench/bench_long_video.py                         # tiny model, CPU, 160x96: about 5 min on 2 cores
  python bench/bench_long_video.py --preset 1.3b --width 832 --height 480 --lengths 81,161,241   # GPU
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))   # the development tools (make_tiny_models)
import benchlib  # noqa: E402

SHIFT = 5.0          # Phantom's sample_shift
WINDOW, OVERLAP = 81, 32   # video frames: core's node default length; 32 = 8 latent frames on every ComfyUI


def _status_kib(field: str) -> int:
    return int(re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))


class Peak:
    """Peak memory of one sampling run (see the module docstring), in GiB."""

    def __init__(self, cuda: bool):
        self.cuda = cuda

    def __enter__(self):
        import torch
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        else:
            import ctypes
            import gc
            gc.collect()
            ctypes.CDLL("libc.so.6").malloc_trim(0)            # hand freed memory back: it would be reused unseen
            Path("/proc/self/clear_refs").write_text("5")      # resets VmHWM to the current resident size
            self.base = _status_kib("VmRSS")
        return self

    def __exit__(self, *exc):
        import torch
        if self.cuda:
            torch.cuda.synchronize()
            self.gib = torch.cuda.max_memory_allocated() / 2**30
        else:
            self.gib = (_status_kib("VmHWM") - self.base) / 2**20


def _load_model(a, comfy_dir):
    import make_tiny_models
    import torch
    import comfy.sd
    from comfy_extras.nodes_model_advanced import ModelSamplingSD3
    cuda = torch.cuda.is_available()
    if a.preset == "tiny":
        make_tiny_models.build(str(comfy_dir), a.models, "tiny")
        model = comfy.sd.load_diffusion_model(
            str(Path(a.models) / "diffusion_models" / make_tiny_models.PRESETS["tiny"]["unet_name"]))
    else:
        sd = make_tiny_models.wan21_state_dict(str(comfy_dir), a.preset, 0, "bfloat16",
                                               device="cuda" if cuda else "cpu", out_device="cpu")
        model = comfy.sd.load_diffusion_model_state_dict(sd)
    return ModelSamplingSD3().patch(model, SHIFT)[0]


def _windowed(model):
    """The model with core Wan Context Windows, through the node itself (its inputs differ between versions)."""
    import inspect
    from comfy_extras.nodes_context_windows import WanContextWindowsManualNode as Node
    params = inspect.signature(Node.execute).parameters
    extra = {k: False for k in ("freenoise", "retain_first_frame", "split_conds_to_windows") if k in params}
    out = Node.execute(model=model, context_length=WINDOW, context_overlap=OVERLAP, context_schedule="standard_static",
                       context_stride=1, closed_loop=False, fuse_method="pyramid", **extra)
    return out.result[0] if hasattr(out, "result") else out[0]


def _inputs(a, length):
    """(latent, noise, positive, negative_text, negative_img_text) for a video of `length` frames."""
    import torch
    import node_helpers
    from mv2id_core.comfyui.wan import zero_reference_latent
    from mv2id_core.latents import latent_shape
    g = torch.Generator().manual_seed(0)
    latent = torch.zeros(latent_shape(1, length, a.height, a.width))
    noise = torch.randn(latent.shape, generator=g)
    refs = torch.randn(1, 16, a.refs, *latent.shape[-2:], generator=g)
    pos, neg = ([[torch.randn(1, a.text_tokens, 4096, generator=g), {}]] for _ in range(2))
    with_refs = lambda c, r: node_helpers.conditioning_set_values(c, {"time_dim_concat": r})   # noqa: E731
    return latent, noise, with_refs(pos, refs), with_refs(neg, refs), with_refs(neg, zero_reference_latent(refs))


def _run(model, inputs, steps, cuda):
    """Sample `steps` Euler steps through the Mv2ID guider; (wall seconds per step and CPU seconds of the
    process per step, both over the steps after the first; peak GiB; windows per evaluation)."""
    import torch
    import comfy.samplers
    from mv2id_core.comfyui import context_windows
    from mv2id_core.comfyui.guider import ReferenceGuider
    from mv2id_core.guidance import GuidanceConfig
    latent, noise, pos, neg_text, neg_img = inputs
    guider = ReferenceGuider(model)
    guider.set_conds(pos, neg_text, neg_img)
    guider.set_cfg(GuidanceConfig(7.5, 5.0, 0.0, 1.0))
    sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "simple", steps).cpu()
    handler = context_windows.handler_of(model.model_options)
    windows = 1 if handler is None else len(context_windows.windows_per_step(handler, latent.shape[2], 1)[0])
    marks = []

    def step_done(step, x0, x, total):
        if cuda:
            torch.cuda.synchronize()
        marks.append((time.perf_counter(), time.process_time()))

    with Peak(cuda) as peak:
        with torch.inference_mode():
            guider.sample(noise, latent, comfy.samplers.sampler_object("euler"), sigmas, callback=step_done,
                          disable_pbar=True, seed=0)
    (t0, c0), (t1, c1) = marks[0], marks[-1]
    return (t1 - t0) / (len(marks) - 1), (c1 - c0) / (len(marks) - 1), peak.gib, windows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--comfyui", help="ComfyUI folder (default: the pinned host)")
    ap.add_argument("--models", default=str(ROOT / ".host" / "models"), help="where the tiny model is (re)generated")
    ap.add_argument("--preset", default="tiny", choices=["tiny", "1.3b"])
    ap.add_argument("--width", type=int, default=160)
    ap.add_argument("--height", type=int, default=96)
    ap.add_argument("--lengths", default="81,161,241,481", help="video lengths in frames (4n+1)")
    ap.add_argument("--refs", type=int, default=3)
    ap.add_argument("--steps", type=int, default=3, help="steps per run (all but the first are timed; at least 2)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--text-tokens", type=int, default=512)
    ap.add_argument("--json", help="also write the results here")
    a = ap.parse_args(argv)
    import comfy_server
    comfy_dir = Path(a.comfyui) if a.comfyui else comfy_server.HostConfig.from_env().comfyui
    import make_tiny_models
    make_tiny_models._import_comfy(str(comfy_dir))
    rows, meta = measure(a, comfy_dir)
    report(a, rows, meta)
    benchlib.write_results(a.json, {**vars(a), **meta}, rows)


def measure(a, comfy_dir) -> tuple[list[dict], dict]:
    import torch
    import comfy.ldm.modules.attention as attention
    import comfy.model_management as mm
    cuda = mm.get_torch_device().type == "cuda"
    base = _load_model(a, comfy_dir)
    models = {"whole": base, "windows": _windowed(base)}
    device = torch.cuda.get_device_name() if cuda else f"CPU ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"
    meta = {"device": device, "attention": attention.optimized_attention.__name__, "torch": torch.__version__}
    rows = []
    for length in [int(v) for v in a.lengths.split(",")]:
        inputs = _inputs(a, length)
        (times, cpus, peaks), windows = ({name: [] for name in models} for _ in range(3)), {}
        for r in range(a.rounds):
            for name in (list(models) if r % 2 == 0 else list(models)[::-1]):   # side by side, alternating
                seconds, cpu, gib, windows[name] = _run(models[name], inputs, max(a.steps, 2), cuda)
                times[name].append(seconds)
                cpus[name].append(cpu)
                peaks[name].append(gib)
        for name in models:
            rows.append({"frames": length, "latent_frames": int(inputs[0].shape[2]), "config": name,
                         "windows_per_step": windows[name], "s_per_step": statistics.median(times[name]),
                         "cpu_s_per_step": statistics.median(cpus[name]), "peak_gib": max(peaks[name])})
        print(f"[{time.strftime('%H:%M:%S')}] {length} frames: " + ", ".join(
            f"{r['config']} {r['s_per_step']:.3f} s/step ({r['cpu_s_per_step']:.3f} CPU s) {r['peak_gib']:.3f} GiB"
            for r in rows[-2:]), flush=True)
        mm.soft_empty_cache()
    return rows, meta


def report(a, rows, meta) -> None:
    print(f"\n# Mv2ID long video: preset={a.preset} {a.width}x{a.height}, {a.refs} references, 3 passes per step; "
          f"windows of {WINDOW} frames, overlap {OVERLAP}, standard_static; {meta['device']}, attention "
          f"{meta['attention']}, torch {meta['torch']}; median of {a.rounds} rounds of {a.steps} steps (the first "
          f"untimed)")
    print(f"{'frames':>7}{'latent':>8}{'windows':>9}{'s/step whole':>14}{'s/step windows':>16}{'cpu s whole':>13}"
          f"{'cpu s windows':>15}{'peak GiB whole':>16}{'peak GiB windows':>18}")
    by = {(r["frames"], r["config"]): r for r in rows}
    for frames in sorted({r["frames"] for r in rows}):
        w, c = by[(frames, "whole")], by[(frames, "windows")]
        print(f"{frames:>7}{w['latent_frames']:>8}{c['windows_per_step']:>9}{w['s_per_step']:>14.3f}"
              f"{c['s_per_step']:>16.3f}{w['cpu_s_per_step']:>13.3f}{c['cpu_s_per_step']:>15.3f}"
              f"{w['peak_gib']:>16.3f}{c['peak_gib']:>18.3f}")


if __name__ == "__main__":
    main()
