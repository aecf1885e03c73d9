"""The speed nodes users add, on a model that goes through RD-RoPE and the Mv2ID sampler: core EasyCache
and LazyCache (they skip steps, the result stays close to the uncached run, no error when the reference
window opens or closes), core TorchCompileModel, and RD-RoPE stacked with core ScaleROPE's rope_options."""
from __future__ import annotations

import re

import pytest
import torch

from graphs import Graph
from model_path_graphs import calls, conditioning, latent, ref_files, sampler

__all__ = ["ref_files"]   # module fixture

STEPS = 20
# reuse thresholds that make the caches skip several of the 20 steps on the tiny random model (its outputs
# change much more per step than a trained model's, so the core defaults (0.2) skip nothing here)
THRESHOLD = {"EasyCache": 0.5, "LazyCache": 0.3}


def _cached_run(comfy, names, cache, window, outside="text_cfg", save="cache"):
    """(latent, forward calls, skipped steps reported by the cache) of one run."""
    g = Graph()
    model, _, cond = conditioning(g, names)
    model = g.add("Mv2IDRDRoPE", model=model, mode="rd", offset=1.0, first_index=1, layout=cond[4])
    if cache:
        model = g.add(cache, model=model, reuse_threshold=THRESHOLD[cache], start_percent=0.0, end_percent=1.0, verbose=False)
    model = g.add("Mv2IDTestCallCounter", model=model, key=save)
    lat = sampler(g, model, cond, steps=STEPS, ref_start=window[0], ref_end=window[1], outside_window=outside)
    g.add("Mv2IDTestSaveLatent", samples=lat, filename=save)
    g.add("Mv2IDTestCallReport", _id="report", samples=lat, key=save)
    mark = len(comfy.log_tail(100000).splitlines())
    entry = comfy.run(g.prompt())
    log = "\n".join(comfy.log_tail(100000).splitlines()[mark:])
    skipped = [int(m) for m in re.findall(rf"{cache} - skipped (\d+)/{STEPS} steps", log)] if cache else [0]
    return latent(comfy, entry, save), calls(entry), skipped


def _rel(a, b):
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("cache", ["EasyCache", "LazyCache"])
@pytest.mark.parametrize("window,outside", [((0.5, 1.0), "text_cfg"), ((0.0, 0.5), "text_cfg"), ((0.3, 0.6), "text_cfg"),
                                            ((0.0, 0.2), "no_cfg")])
def test_step_caches_skip_steps_and_stay_close(comfy, ref_files, cache, window, outside):
    """The third condition appears late (0.5..1: on ComfyUI 0.3.75 EasyCache raised KeyError), first
    (0..0.5), in the middle (0.3..0.6), or the run drops to one pass after the window (no_cfg)."""
    tag = f"{cache}_{window[0]}_{window[1]}_{outside}"
    ref, ref_calls, _ = _cached_run(comfy, ref_files, None, window, outside, save=f"nocache_{tag}")
    out, out_calls, skipped = _cached_run(comfy, ref_files, cache, window, outside, save=f"{tag}")
    assert skipped and skipped[0] > 0, (skipped, out_calls)
    passes = lambda cs: sum(c["batch"] for c in cs)   # noqa: E731
    assert passes(out_calls) < passes(ref_calls), (out_calls, ref_calls)
    assert torch.isfinite(out).all()
    # close: a fraction of what separates two unrelated results (another seed is ~1.4 away)
    assert _rel(out, ref) < 0.35, _rel(out, ref)


def test_torch_compile_model(comfy, ref_files):
    """Core TorchCompileModel (inductor; it compiles C++ on the CPU here) before and after RD-RoPE: the
    compiled model traces the patched rope_encode and gives the eager result up to float reordering.
    Kept cheap: both orders in one prompt, full window (one batch shape, so one graph per order), 2 steps;
    about 60-90 s here, most of it inductor's first compile (its cache makes later runs faster)."""
    g = Graph()
    model, _, cond = conditioning(g, ref_files)

    def rd(m):
        return g.add("Mv2IDRDRoPE", model=m, mode="rd", offset=1.0, first_index=1, layout=cond[4])

    def compiled(m):
        return g.add("TorchCompileModel", model=m, backend="inductor")

    models = {"eager": rd(model), "rdrope_then_compile": compiled(rd(model)), "compile_then_rdrope": rd(compiled(model))}
    for name, m in models.items():
        g.add("Mv2IDTestSaveLatent", samples=sampler(g, m, cond, steps=2, ref_end=1.0), filename=f"tc_{name}")
    entry = comfy.run(g.prompt(), timeout=1200)
    out = {name: latent(comfy, entry, f"tc_{name}") for name in models}
    for name in ("rdrope_then_compile", "compile_then_rdrope"):
        assert torch.isfinite(out[name]).all()
        assert _rel(out[name], out["eager"]) < 1e-4, (name, _rel(out[name], out["eager"]))


ROPE_IDENTITY = dict(scale_x=1.0, shift_x=0.0, scale_y=1.0, shift_y=0.0, scale_t=1.0, shift_t=0.0)


@pytest.mark.parametrize("order", ["scale_rope_first", "rdrope_first"])
def test_rdrope_stacks_with_core_scale_rope(comfy, ref_files, order):
    """Core ScaleROPE sets transformer_options['rope_options'] (a global scale and shift of every position
    id). RD-RoPE applies it to the reference ids too: an identity ScaleROPE changes nothing; a shift of all
    positions changes nothing either (RoPE attention sees only differences), which would not hold if the
    references kept unshifted positions; a scale does change the result."""
    g = Graph()
    model, _, cond = conditioning(g, ref_files)

    def stacked(mode, **rope):
        scale = lambda m: g.add("ScaleROPE", model=m, **{**ROPE_IDENTITY, **rope})                           # noqa: E731
        rd = lambda m: g.add("Mv2IDRDRoPE", model=m, mode=mode, offset=1.0, first_index=1, layout=cond[4])  # noqa: E731
        return rd(scale(model)) if order == "scale_rope_first" else scale(rd(model))

    runs = {"rd": g.add("Mv2IDRDRoPE", model=model, mode="rd", offset=1.0, first_index=1, layout=cond[4]),
            "rd_identity": stacked("rd"), "rd_shift": stacked("rd", shift_t=3.0, shift_x=5.0, shift_y=-2.0),
            "rd_scale": stacked("rd", scale_t=2.0), "vanilla_shift": stacked("vanilla", shift_t=3.0),
            "shift_alone": g.add("ScaleROPE", model=model, **{**ROPE_IDENTITY, "shift_t": 3.0})}
    for name, m in runs.items():
        g.add("Mv2IDTestSaveLatent", samples=sampler(g, m, cond, steps=2), filename=f"rope_{order}_{name}")
    entry = comfy.run(g.prompt())
    out = {name: latent(comfy, entry, f"rope_{order}_{name}") for name in runs}
    assert torch.equal(out["rd_identity"], out["rd"])
    assert torch.equal(out["vanilla_shift"], out["shift_alone"])      # vanilla is ComfyUI's own positions
    assert _rel(out["rd_shift"], out["rd"]) < 1e-4, _rel(out["rd_shift"], out["rd"])
    assert _rel(out["rd_scale"], out["rd"]) > 1e-2, _rel(out["rd_scale"], out["rd"])
