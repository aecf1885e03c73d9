"""Benchmark of the Mv2ID model path, measured side by side in one run (not a test).

For each configuration it reports the model passes one video needs and the seconds per sampling step:

  config            guider                                   steps  reference window   outside it
  phantom           core DualCFGGuider (ComfyUI's Phantom)     30   every step         -
  mv2id_full        Mv2ID guider + RD-RoPE                     30   0..1               -
  mv2id_default     Mv2ID guider + RD-RoPE                     30   0..0.2             text CFG (2 passes)
  mv2id_distilled   Mv2ID guider + RD-RoPE (distilled preset)   8   0..0.125 (step 0)  no CFG (1 pass)
  ..._easycache     the same with core EasyCache (its default settings)

How the numbers are made:
- passes/video: counted, not computed: each configuration samples a whole video (Euler, its own step
  count) through the real guider with a DIFFUSION_MODEL wrapper that counts batch entries. Without a cache
  the count does not depend on the weights; EasyCache's skips do, and they are counted on the tiny random
  model (--count-on tiny, the default) unless --count-on bench: random weights say nothing about what a
  trained model lets EasyCache skip, the rows only show that caching works on this path.
- s/step: the time of one step of each kind (3 passes: Mv2ID or core Phantom; 2 passes; 1 pass; plus a
  plain text-to-video CFG step and a 3-pass step without the RD-RoPE patch) is measured on the benchmark
  model over --steps steps, interleaved over --rounds rounds (median), and a configuration's s/step is the
  mean over its steps of the time of that step's kind, scaled by the passes the cache left. --direct also
  times every configuration end to end (the default on the tiny preset, as a check of the derivation).
- peak GiB (CUDA only): the peak of the step kinds the configuration uses (weights included).

Targets: RD-RoPE adds <= 1% per step; mv2id_full is no slower than phantom; mv2id_default is >= 1.3x faster
than phantom per step; mv2id_distilled needs at most 1/8 of the model passes of phantom at 30 steps.

  python bench/bench_model_path.py                                  # tiny model on the CPU (2-4 min on 2 cores)
  python bench/bench_model_path.py --preset 1.3b --width 832 --height 480 --length 81      # GPU, 1.3B shapes
  bash bench/gpu_14b.sh                                             # GPU, 14B shapes, bf16 and fp8 (one run)
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))   # the development tools (make_tiny_models, workflow_api)

DTYPES = {"float32": ("float32", None), "bfloat16": ("bfloat16", None), "fp8_e4m3fn": ("bfloat16", "float8_e4m3fn")}
SHIFT = 5.0          # Phantom's sample_shift


@dataclass
class Config:
    name: str
    guider: str                      # "phantom" | "mv2id" | "plain"
    steps: int
    window: tuple = (0.0, 1.0)
    outside: str = "text_cfg"
    rdrope: bool = True
    cache: bool = False
    counted: dict = field(default_factory=dict)


def _configs(a) -> list[Config]:
    base = [Config("phantom", "phantom", a.phantom_steps, rdrope=False),
            Config("mv2id_full", "mv2id", a.phantom_steps),
            Config("mv2id_default", "mv2id", a.phantom_steps, window=(0.0, 0.2)),
            Config("mv2id_distilled", "mv2id", a.distilled_steps, window=(0.0, 1.0 / a.distilled_steps), outside="no_cfg")]
    return base + [Config(c.name + "_easycache", c.guider, c.steps, c.window, c.outside, c.rdrope, True) for c in base]


# the step kinds that are timed: (guider, window, outside, rdrope)
KINDS = {"phantom3": ("phantom", (0.0, 1.0), "text_cfg", False), "mv2id3": ("mv2id", (0.0, 1.0), "text_cfg", True),
         "mv2id2": ("mv2id", (0.0, 0.0), "text_cfg", True), "mv2id1": ("mv2id", (0.0, 0.0), "no_cfg", True),
         "norope3": ("mv2id", (0.0, 1.0), "text_cfg", False), "plain2": ("plain", None, None, False)}


def _comfy_dir(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    import comfy_server
    return comfy_server.HostConfig.from_env().comfyui


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--comfyui", help="ComfyUI folder (default: the pinned host)")
    ap.add_argument("--models", default=str(ROOT / ".host" / "models"), help="where model files are (re)generated")
    ap.add_argument("--preset", default="tiny", choices=["tiny", "1.3b", "14b"])
    ap.add_argument("--dtype", choices=sorted(DTYPES), help="weights: float32 (tiny default), bfloat16 (default "
                    "otherwise) or fp8_e4m3fn (stored in fp8, computed in bf16, as UNETLoader weight_dtype fp8_e4m3fn)")
    ap.add_argument("--in-memory", action="store_true", help="build the random weights in memory instead of a file "
                    "(always for 14b; on a GPU they are made there)")
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--height", type=int, default=192)
    ap.add_argument("--length", type=int, default=17)
    ap.add_argument("--refs", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10, help="timed steps per step kind and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--phantom-steps", type=int, default=30)
    ap.add_argument("--distilled-steps", type=int, default=8)
    ap.add_argument("--kinds", default=",".join(KINDS), help="step kinds to time (comma list of %(default)s)")
    ap.add_argument("--count-on", choices=["tiny", "bench"], default="tiny", help="model that counts the passes")
    ap.add_argument("--direct", action=argparse.BooleanOptionalAction, default=None,
                    help="also time each configuration end to end (default: on for the tiny preset)")
    ap.add_argument("--cache-threshold", type=float, help="EasyCache reuse_threshold (default: 0.8 when counting on "
                    "the tiny random model, whose outputs change more per step than a trained model's, so that the "
                    "core default 0.2 skips nothing there; else the core default 0.2)")
    ap.add_argument("--text-tokens", type=int, default=512)
    ap.add_argument("--json", help="also write the results here (rewritten after every stage)")
    a = ap.parse_args(argv)
    a.dtype = a.dtype or ("float32" if a.preset == "tiny" else "bfloat16")
    a.direct = (a.preset == "tiny") if a.direct is None else a.direct
    if a.cache_threshold is None:
        a.cache_threshold = 0.8 if a.count_on == "tiny" else 0.2
    a.kinds = [k for k in a.kinds.split(",") if k]
    for k in ("phantom3", "mv2id3", "mv2id2", "mv2id1"):   # the configurations are made of these
        if k not in a.kinds:
            a.kinds.append(k)
    return a


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def load_models(a, comfy_dir: Path, dev):
    """(the tiny counting model, the benchmark model), both with Phantom's shift; build time in seconds."""
    import torch
    import comfy.sd
    import make_tiny_models
    from comfy_extras.nodes_model_advanced import ModelSamplingSD3

    def shifted(m):
        return ModelSamplingSD3().patch(m, SHIFT)[0]

    tiny_file = str(Path(a.models) / "diffusion_models" / make_tiny_models.PRESETS["tiny"]["unet_name"])
    tiny = shifted(comfy.sd.load_diffusion_model(tiny_file))
    t0 = time.perf_counter()
    gen_dtype, store_dtype = DTYPES[a.dtype]
    options = {"dtype": getattr(torch, store_dtype)} if store_dtype else {}
    if a.preset == "tiny" and a.dtype == "float32" and not a.in_memory:
        model = comfy.sd.load_diffusion_model(tiny_file)
    elif a.preset == "14b" or a.preset == "tiny" or a.in_memory:   # (the tiny file stays float32: it also counts)
        sd = make_tiny_models.wan21_state_dict(str(comfy_dir), a.preset, 0, gen_dtype,
                                               device=dev if dev.type == "cuda" else "cpu", out_device="cpu")
        model = comfy.sd.load_diffusion_model_state_dict(sd, model_options=options)
        del sd
    else:
        make_tiny_models.build(str(comfy_dir), a.models, a.preset, dtype_name=gen_dtype)
        model = comfy.sd.load_diffusion_model(
            str(Path(a.models) / "diffusion_models" / make_tiny_models.PRESETS[a.preset]["unet_name"]),
            model_options=options)
    return tiny, shifted(model), round(time.perf_counter() - t0, 1)


class Bench:
    """The inputs of one video (noise, text, references) and the guiders of every configuration on them."""

    def __init__(self, a, dev):
        import torch
        import comfy.samplers
        import node_helpers
        from mv2id_core.comfyui.wan import zero_reference_latent
        from mv2id_core.latents import latent_shape
        from mv2id_core.rdrope import RDRoPEConfig

        self.a, self.cuda = a, dev.type == "cuda"
        g = torch.Generator().manual_seed(0)
        self.latent = torch.zeros(latent_shape(1, a.length, a.height, a.width))
        h, w = self.latent.shape[-2:]
        self.noise = torch.randn(self.latent.shape, generator=g)
        ctx_pos = torch.randn(1, a.text_tokens, 4096, generator=g)
        ctx_neg = torch.randn(1, a.text_tokens, 4096, generator=g)
        refs = torch.randn(1, 16, a.refs, h, w, generator=g)
        self.pos, self.neg = [[ctx_pos, {}]], [[ctx_neg, {}]]
        self.pos_r = node_helpers.conditioning_set_values(self.pos, {"time_dim_concat": refs})
        self.neg_r = node_helpers.conditioning_set_values(self.neg, {"time_dim_concat": refs})
        self.neg_z = node_helpers.conditioning_set_values(self.neg, {"time_dim_concat": zero_reference_latent(refs)})
        self.sampler = comfy.samplers.sampler_object("euler")
        self.rd_config = RDRoPEConfig("rd", 1.0, 1)
        self.patched = {}

    def prepared(self, base, rdrope, cache):
        from comfy_extras.nodes_easycache import EasyCacheNode
        from mv2id_core.comfyui.rdrope_patch import patch_rdrope

        key = (id(base), rdrope, cache)
        if key not in self.patched:
            m = patch_rdrope(base, self.rd_config) if rdrope else base
            if cache:
                m = EasyCacheNode.execute(m, self.a.cache_threshold, 0.15, 0.95, False).result[0]
            self.patched[key] = m
        return self.patched[key]

    def guider(self, base, kind, window, outside, rdrope, cache=False, counter=None):
        import comfy.patcher_extension as pe
        import comfy.samplers
        from comfy_extras.nodes_custom_sampler import Guider_DualCFG
        from mv2id_core.comfyui.guider import ReferenceGuider
        from mv2id_core.guidance import GuidanceConfig

        m = self.prepared(base, rdrope, cache)
        if counter is not None:   # on a clone, after EasyCache: it sees only the passes that really run
            m = m.clone()
            m.add_wrapper_with_key(pe.WrappersMP.DIFFUSION_MODEL, "mv2id_bench_count", counter)
        if kind == "plain":
            gd = comfy.samplers.CFGGuider(m)
            gd.set_conds(self.pos, self.neg)
            gd.set_cfg(7.5)
        elif kind == "phantom":
            gd = Guider_DualCFG(m)
            gd.set_conds(self.pos_r, self.neg_r, self.neg_z)
            gd.set_cfg(7.5, 5.0)
        else:
            gd = ReferenceGuider(m)
            gd.set_conds(self.pos_r, self.neg_r, self.neg_z)
            gd.set_cfg(GuidanceConfig(7.5, 5.0, window[0], window[1], outside))
        return gd

    def sample(self, gd, steps, base):
        """(seconds, peak GiB on CUDA or None, sigmas) of sampling one video in `steps` steps."""
        import torch
        import comfy.samplers

        sigmas = comfy.samplers.calculate_sigmas(base.get_model_object("model_sampling"), "simple", steps).cpu()
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t = time.perf_counter()
        gd.sample(self.noise, self.latent, self.sampler, sigmas, disable_pbar=True, seed=0)
        if self.cuda:
            torch.cuda.synchronize()
        dt = time.perf_counter() - t
        return dt, (torch.cuda.max_memory_allocated() / 2**30 if self.cuda else None), sigmas


def count_passes(bench: Bench, configs: list[Config], model) -> None:
    """Sample each configuration's whole video through its real guider, counting batch entries per step."""
    from mv2id_core.guidance import GuidanceConfig

    for c in configs:
        calls = []

        def counter(executor, x, timestep, context, *args, **kwargs):
            topts = args[2] if len(args) > 2 else kwargs.get("transformer_options", {})
            calls.append((float(topts["sigmas"].flatten()[0]), int(x.shape[0])))
            return executor(x, timestep, context, *args, **kwargs)

        gd = bench.guider(model, c.guider, c.window, c.outside, c.rdrope, c.cache, counter=counter)
        _, _, sigmas = bench.sample(gd, c.steps, model)
        per_step = [0] * c.steps
        for s, n in calls:
            per_step[min(range(c.steps), key=lambda i: abs(float(sigmas[i]) - s))] += n
        nominal = [3 if c.guider == "phantom" else GuidanceConfig(7.5, 5.0, *c.window, c.outside).passes(i, c.steps)
                   for i in range(c.steps)]
        c.counted = {"passes": sum(per_step), "per_step": per_step, "nominal_per_step": nominal}
        log(f"counted {c.name}: {sum(per_step)} passes in {c.steps} steps")


def time_step_kinds(bench: Bench, model, kinds: list[str], steps: int, rounds: int, on_round) -> tuple[dict, dict]:
    """({kind: [s/step per round]}, {kind: peak GiB or None}), the kinds interleaved round by round."""
    times = {k: [] for k in kinds}
    peaks = {k: 0.0 if bench.cuda else None for k in kinds}
    makers = {k: (lambda k=k: bench.guider(model, *KINDS[k])) for k in kinds}
    for k in kinds:                                  # warm-up: load, kernels, allocator
        bench.sample(makers[k](), 1, model)
        log(f"warm-up {k} done")
    for r in range(rounds):
        for k in kinds:
            dt, peak, _ = bench.sample(makers[k](), steps, model)
            times[k].append(dt / steps)
            peaks[k] = max(peaks[k], peak) if bench.cuda else peak
            log(f"round {r + 1}/{rounds} {k}: {dt / steps:.3f} s/step"
                + (f", peak {peak:.2f} GiB" if bench.cuda else ""))
            on_round(times, peaks)
    return times, peaks


def config_rows(configs: list[Config], med: dict, peaks: dict, cuda: bool) -> list[dict]:
    """Each configuration's s/step and s/video from its counted passes and the median time of each step kind."""
    def kind_of(c, passes):
        return "phantom3" if c.guider == "phantom" else {3: "mv2id3", 2: "mv2id2", 1: "mv2id1"}[passes]

    rows = []
    for c in configs:
        cost = sum(med[kind_of(c, n)] * done / n for done, n in zip(c.counted["per_step"], c.counted["nominal_per_step"]))
        used = {kind_of(c, n) for n in c.counted["nominal_per_step"]}
        rows.append({"config": c.name, "steps": c.steps, "passes": c.counted["passes"],
                     "s_per_step": cost / c.steps, "s_per_video": cost,
                     "peak_gib": max(peaks[k] for k in used) if cuda else None})
    return rows


def ratios_of(rows: list[dict], med: dict) -> dict:
    by = {r["config"]: r for r in rows}
    ph, dist = by["phantom"], by["mv2id_distilled"]
    ratios = {
        "distilled_pass_fraction_of_phantom": dist["passes"] / ph["passes"],
        "distilled_video_speedup_vs_phantom": ph["s_per_video"] / dist["s_per_video"],
        "full_vs_phantom_speed": med["phantom3"] / med["mv2id3"],
        "default_window_speedup_per_step": ph["s_per_step"] / by["mv2id_default"]["s_per_step"],
    }
    if "norope3" in med:
        ratios["rdrope_overhead"] = med["mv2id3"] / med["norope3"] - 1.0
    return ratios


def report(a, results: dict, med: dict, peaks: dict, cuda: bool) -> None:
    rows, ratios = results["configs"], results["ratios"]
    by = {r["config"]: r for r in rows}
    ph, dist = by["phantom"], by["mv2id_distilled"]
    print(f"\n# Mv2ID model path benchmark: preset={a.preset} weights={a.dtype} {a.width}x{a.height}x{a.length} "
          f"refs={a.refs} device={results['device']} torch={results['torch']}; step kinds timed over {a.steps} steps x "
          f"{a.rounds} rounds (median); passes counted on the {'tiny' if a.count_on == 'tiny' else 'benchmark'} model")
    gib = (lambda v: f"{v:>10.2f}") if cuda else (lambda v: f"{'-':>10}")   # noqa: E731
    print(f"{'step kind':<12}{'s/step':>10}{'peak GiB':>10}")
    for k in a.kinds:
        print(f"{k:<12}{med[k]:>10.4f}{gib(peaks[k])}")
    direct = " direct s/step" if a.direct else ""
    print(f"\n{'config':<28}{'steps':>6}{'passes':>8}{'s/step':>10}{'s/video':>10}{'peak GiB':>10}{direct}")
    for r in rows:
        extra = f"{r['direct_s_per_step']:>15.4f}" if a.direct else ""
        print(f"{r['config']:<28}{r['steps']:>6}{r['passes']:>8}{r['s_per_step']:>10.4f}{r['s_per_video']:>10.2f}"
              f"{gib(r['peak_gib'])}{extra}")
    frac = ratios["distilled_pass_fraction_of_phantom"]
    print(f"\nDistilled preset ({a.distilled_steps} steps, reference window on step 0, one pass after it): "
          f"{dist['passes']} model passes vs core Phantom's {ph['passes']} at {a.phantom_steps} steps = 1/{1 / frac:.1f} "
          f"(target: at most 1/8 -> {'met' if frac <= 1 / 8 else 'NOT met'}); "
          f"{ratios['distilled_video_speedup_vs_phantom']:.1f}x less time per video")
    if "rdrope_overhead" in ratios:
        print(f"RD-RoPE overhead per step: {ratios['rdrope_overhead'] * 100:+.2f}% (target <= +1%)")
    print(f"Mv2ID full window vs core Phantom: {ratios['full_vs_phantom_speed']:.3f}x speed (target >= 1.0x, noise ~2%)")
    print(f"Mv2ID default window vs core Phantom: {ratios['default_window_speedup_per_step']:.3f}x faster per step "
          f"(target >= 1.3x)")
    print(f"EasyCache rows (reuse_threshold {a.cache_threshold}): skips depend on the weights"
          + (" (counted on the tiny random model)" if a.count_on == "tiny" else "") + ".")


def main(argv=None):
    a = parse_args(argv)
    import make_tiny_models
    comfy_dir = _comfy_dir(a.comfyui)
    make_tiny_models.build(str(comfy_dir), a.models, "tiny")     # the counting model; imports comfy
    import torch
    import comfy.model_management as mm

    dev = mm.get_torch_device()
    cuda = dev.type == "cuda"
    dev_name = torch.cuda.get_device_name() if cuda else f"CPU ({os.cpu_count()} threads)"
    results = {"args": vars(a), "device": dev_name, "torch": torch.__version__, "stages": {}}

    def save():
        if a.json:
            Path(a.json).parent.mkdir(parents=True, exist_ok=True)
            Path(a.json).write_text(json.dumps(results, indent=1))

    tiny, model, results["stages"]["build_s"] = load_models(a, comfy_dir, dev)
    log(f"model {a.preset} {a.dtype} ready in {results['stages']['build_s']} s on {dev_name}")
    save()
    bench = Bench(a, dev)

    # 1. passes per video (counted)
    configs = _configs(a)
    count_passes(bench, configs, tiny if a.count_on == "tiny" else model)
    results["passes"] = {c.name: c.counted for c in configs}
    save()

    # 2. time of each step kind
    def on_round(times, peaks):
        results["step_kinds"] = {k: {"s_per_step": times[k], "peak_gib": peaks[k]} for k in a.kinds}
        save()

    times, peaks = time_step_kinds(bench, model, a.kinds, a.steps, a.rounds, on_round)
    med = {k: statistics.median(v) for k, v in times.items()}
    rows = config_rows(configs, med, peaks, cuda)

    # 3. end to end (optional)
    if a.direct:
        for row, c in zip(rows, configs):
            dt, peak, _ = bench.sample(bench.guider(model, c.guider, c.window, c.outside, c.rdrope, c.cache), c.steps,
                                       model)
            row["direct_s_per_step"], row["direct_peak_gib"] = dt / c.steps, peak
            log(f"direct {c.name}: {dt / c.steps:.4f} s/step")
    results["configs"] = rows
    results["ratios"] = ratios_of(rows, med)
    save()
    report(a, results, med, peaks, cuda)


if __name__ == "__main__":
    main()
