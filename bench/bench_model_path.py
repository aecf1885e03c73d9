"""Benchmark of the Mv2ID model path, measured side by side in one run (not a test).

Per configuration: seconds per sampling step and peak GPU memory (CUDA) for
  plain      T2V with text CFG (2 passes per step, no references)
  phantom    ComfyUI core's Phantom path (DualCFGGuider, 3 passes, references, vanilla positions)
  mv2id_full Mv2ID guider, RD-RoPE, reference window 0..1 (3 passes every step)
  mv2id_def  Mv2ID guider, RD-RoPE, default window 0..0.2
  mv2id_norope  like mv2id_full without the RD-RoPE patch (for the RD-RoPE overhead ratio)
Configurations run interleaved over several rounds and the median is reported, so drift on
a shared machine hits all of them alike.

Targets (from the issue): RD-RoPE adds <= 1% per step; mv2id_full is no slower than phantom;
mv2id_def is >= 1.3x faster than phantom at the same step count.

  python bench/bench_model_path.py                      # tiny model, CPU-friendly size
  python bench/bench_model_path.py --preset 1.3b --width 832 --height 480 --length 81   # GPU
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))


def _comfy_dir(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    import comfy_server
    return comfy_server.HostConfig.from_env().comfyui


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--comfyui", help="ComfyUI folder (default: the pinned host)")
    ap.add_argument("--models", default=str(ROOT / ".host" / "models"), help="where model files are (re)generated")
    ap.add_argument("--preset", default="tiny", choices=["tiny", "1.3b"])
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--height", type=int, default=192)
    ap.add_argument("--length", type=int, default=17)
    ap.add_argument("--refs", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10, help="steps per timed run (the window is a fraction of these)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--text-tokens", type=int, default=512)
    ap.add_argument("--json", help="also write the results here")
    a = ap.parse_args(argv)

    import make_tiny_models
    comfy_dir = _comfy_dir(a.comfyui)
    dtype = "bfloat16" if a.preset == "1.3b" else "float32"
    make_tiny_models.build(str(comfy_dir), a.models, a.preset, dtype_name=dtype)   # imports comfy
    import torch
    import comfy.model_management as mm
    import comfy.sd
    import comfy.samplers
    import node_helpers
    from comfy_extras.nodes_custom_sampler import Guider_DualCFG

    core = _import_core()
    GuidanceConfig, RDRoPEConfig = core.guidance.GuidanceConfig, core.rdrope.RDRoPEConfig
    from mv2id_core.comfyui.guider import ReferenceGuider
    from mv2id_core.comfyui.rdrope_patch import patch_rdrope
    from mv2id_core.comfyui.wan import zero_reference_latent
    from mv2id_core.latents import latent_shape

    unet = Path(a.models) / "diffusion_models" / make_tiny_models.PRESETS[a.preset]["unet_name"]
    model = comfy.sd.load_diffusion_model(str(unet))
    dev = mm.get_torch_device()
    cuda = dev.type == "cuda"
    g = torch.Generator().manual_seed(0)
    latent = torch.zeros(latent_shape(1, a.length, a.height, a.width))
    h, w = latent.shape[-2:]
    noise = torch.randn(latent.shape, generator=g)
    ctx_pos = torch.randn(1, a.text_tokens, 4096, generator=g)
    ctx_neg = torch.randn(1, a.text_tokens, 4096, generator=g)
    refs = torch.randn(1, 16, a.refs, h, w, generator=g)
    zero_refs = zero_reference_latent(refs)
    pos, neg = [[ctx_pos, {}]], [[ctx_neg, {}]]
    pos_r = node_helpers.conditioning_set_values(pos, {"time_dim_concat": refs})
    neg_r = node_helpers.conditioning_set_values(neg, {"time_dim_concat": refs})
    neg_z = node_helpers.conditioning_set_values(neg, {"time_dim_concat": zero_refs})
    rd_model = patch_rdrope(model, RDRoPEConfig("rd", 1.0, 1))

    def plain():
        gd = comfy.samplers.CFGGuider(model); gd.set_conds(pos, neg); gd.set_cfg(5.0); return gd

    def phantom():
        gd = Guider_DualCFG(model); gd.set_conds(pos_r, neg_r, neg_z); gd.set_cfg(7.5, 5.0); return gd

    def mv2id(m, end):
        def make():
            gd = ReferenceGuider(m); gd.set_conds(pos_r, neg_r, neg_z)
            gd.set_cfg(GuidanceConfig(7.5, 5.0, 0.0, end)); return gd
        return make

    configs = {"plain": plain, "phantom": phantom, "mv2id_full": mv2id(rd_model, 1.0),
               "mv2id_def": mv2id(rd_model, 0.2), "mv2id_norope": mv2id(model, 1.0)}
    sampler = comfy.samplers.sampler_object("euler")

    def run(make, steps):
        gd = make()
        sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "simple", steps).cpu()
        if cuda:
            torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        gd.sample(noise, latent, sampler, sigmas, disable_pbar=True, seed=0)
        if cuda:
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
        return dt / steps, peak

    for make in configs.values():      # warm-up: model load, kernels, allocator
        run(make, 1)
    times = {k: [] for k in configs}
    peaks = {k: 0.0 for k in configs}
    for _ in range(a.rounds):
        for name, make in configs.items():
            s, p = run(make, a.steps)
            times[name].append(s)
            peaks[name] = max(peaks[name], p)
    med = {k: statistics.median(v) for k, v in times.items()}

    dev_name = torch.cuda.get_device_name() if cuda else f"CPU ({os.cpu_count()} threads)"
    print(f"# Mv2ID model path benchmark: preset={a.preset} {a.width}x{a.height}x{a.length} refs={a.refs} "
          f"steps={a.steps} rounds={a.rounds} device={dev_name} torch={torch.__version__}")
    print(f"{'config':<14}{'s/step':>10}{'peak GiB':>10}{'vs phantom':>12}")
    for k in configs:
        print(f"{k:<14}{med[k]:>10.4f}{peaks[k]:>10.2f}{med['phantom'] / med[k]:>11.2f}x")
    ratios = {
        "rdrope_overhead": med["mv2id_full"] / med["mv2id_norope"] - 1.0,
        "full_vs_phantom": med["phantom"] / med["mv2id_full"],
        "default_window_speedup": med["phantom"] / med["mv2id_def"],
    }
    print(f"RD-RoPE overhead per step: {ratios['rdrope_overhead'] * 100:+.2f}% (target <= +1%)")
    print(f"Mv2ID full window vs core Phantom: {ratios['full_vs_phantom']:.3f}x speed (target >= 1.0x, noise ~2%)")
    print(f"Mv2ID default window vs core Phantom: {ratios['default_window_speedup']:.3f}x faster (target >= 1.3x)")
    if a.json:
        Path(a.json).write_text(json.dumps({"args": vars(a), "device": dev_name, "s_per_step": med,
                                            "all_s_per_step": times, "peak_gib": peaks, "ratios": ratios}, indent=1))


def _import_core():
    """mv2id_core as a plain package (its comfyui subpackage imports comfy, which is on the path)."""
    sys.path.insert(0, str(ROOT))
    import mv2id_core.guidance
    import mv2id_core.rdrope
    import mv2id_core.comfyui.guider
    return mv2id_core


if __name__ == "__main__":
    main()
