"""Reference guidance on the real host: what runs outside the window (text CFG or one pass), one mode
per sampling step for multi-stage samplers, and the KSamplerAdvanced-style two-stage hand-over."""
from __future__ import annotations

import pytest
import torch

from graphs import Graph, tiny_loaders
from model_path_graphs import calls, conditioning, evaluations, latent, mv2id, ref_files, refs, sampler

__all__ = ["ref_files"]   # module fixture


@pytest.mark.parametrize("outside,expected", [("text_cfg", [3, 2, 2, 2, 2]), ("no_cfg", [3, 1, 1, 1, 1])])
def test_outside_window_runs_text_cfg_or_one_pass(comfy, ref_files, outside, expected):
    g = Graph()
    mv2id(g, ref_files, steps=5, ref_end=0.2, counter=f"out_{outside}", save=f"out_{outside}", outside_window=outside)
    got = calls(comfy.run(g.prompt()))
    assert [p for _, p in evaluations(got)] == expected, got


@pytest.mark.parametrize("outside,cfg,sampler_name", [("text_cfg", 7.5, "uni_pc"), ("no_cfg", 1.0, "euler")])
def test_steps_outside_the_window_equal_core_ksampler(comfy, ref_files, outside, cfg, sampler_name):
    """With an empty window, text_cfg is core KSampler's CFG between positive and negative_text and no_cfg
    is KSampler at cfg 1: same schedule (uni_pc drops the penultimate sigma, as KSampler does), same
    noise, bit for bit."""
    g = Graph()
    model, _, cond = conditioning(g, ref_files)
    ours = sampler(g, model, cond, steps=4, ref_end=0.0, outside_window=outside, sampler_name=sampler_name)
    g.add("Mv2IDTestSaveLatent", samples=ours, filename=f"ks_ours_{outside}")
    core = g.add("KSampler", model=model, seed=11, steps=4, cfg=cfg, sampler_name=sampler_name, scheduler="simple",
                 positive=cond[0], negative=cond[1], latent_image=cond[3], denoise=1.0)
    g.add("Mv2IDTestSaveLatent", samples=core, filename=f"ks_core_{outside}")
    entry = comfy.run(g.prompt())
    assert torch.equal(latent(comfy, entry, f"ks_ours_{outside}"), latent(comfy, entry, f"ks_core_{outside}"))


@pytest.mark.parametrize("sampler_name", ["heun", "dpmpp_2s_ancestral"])
def test_every_evaluation_of_a_step_uses_that_steps_mode(comfy, ref_files, sampler_name):
    """Heun's corrector runs at the next step's sigma and DPM++ 2S at a midpoint: all evaluations of one
    step must run the same passes. Window 0..0.4 of 5 steps = steps 0 and 1 (two evaluations each,
    the last step one)."""
    g = Graph()
    mv2id(g, ref_files, steps=5, ref_end=0.4, counter=f"ms_{sampler_name}", save=f"ms_{sampler_name}",
          sampler_name=sampler_name)
    got = evaluations(calls(comfy.run(g.prompt())))
    assert [p for _, p in got] == [3, 3, 3, 3, 2, 2, 2, 2, 2], got


def _two_stage(g, model, cond, k, *, steps=4, **kw):
    """Mv2ID Sampler steps 0..k with leftover noise, then steps k..end without adding noise."""
    first = sampler(g, model, cond, steps=steps, end_at_step=k, return_with_leftover_noise="enable", **kw)
    return first, sampler(g, model, cond, latent=first, steps=steps, add_noise="disable", start_at_step=k, **kw)


def test_two_stages_hand_over_like_ksampler_advanced(comfy, ref_files):
    """The Wan 2.2 recipe with one model: core KSamplerAdvanced for steps 0..2 without references, then the
    Mv2ID Sampler for 2..4 with references. Each stage equals its core counterpart bit for bit:
    stage 1 (Mv2ID, empty window) = KSamplerAdvanced with the same conditionings; stage 2 (full window,
    vanilla positions) = SamplerCustomAdvanced + DualCFGGuider on the same sigmas, noise disabled."""
    k, steps = 2, 4
    g = Graph()
    model, vae, pos, neg = tiny_loaders(g)
    cond = g.add("Mv2IDReferenceConditioning", positive=pos, negative=neg, vae=vae,
                 reference_images=refs(g, ref_files), width=64, height=48, length=9, batch_size=1, fit="center_crop")
    vanilla = g.add("Mv2IDRDRoPE", model=model, mode="vanilla", offset=1.0, first_index=1)

    def ksa(positive, negative, latent, add_noise, start, end, leftover, _id=None):
        return g.add("KSamplerAdvanced", _id=_id, model=model, add_noise=add_noise, noise_seed=11, steps=steps, cfg=7.5,
                     sampler_name="euler", scheduler="simple", positive=positive, negative=negative,
                     latent_image=latent, start_at_step=start, end_at_step=end, return_with_leftover_noise=leftover)

    # stage 1: core without references vs Mv2ID (empty window) on the same plain text conditionings
    core1 = ksa(pos, neg, cond[3], "enable", 0, k, "enable")
    plain = [pos, neg, neg]
    ours1 = sampler(g, model, plain, latent=cond[3], steps=steps, ref_end=0.0, end_at_step=k,
                    return_with_leftover_noise="enable")
    # stage 2 from the core stage 1: Mv2ID (full window) vs DualCFGGuider on KSamplerAdvanced's sigmas
    ours2 = sampler(g, vanilla, cond, latent=core1, steps=steps, ref_end=1.0, add_noise="disable", start_at_step=k)
    sig = g.add("SplitSigmas", sigmas=g.add("BasicScheduler", model=model, scheduler="simple", steps=steps, denoise=1.0),
                step=k)
    guider = g.add("DualCFGGuider", model=model, cond1=cond[0], cond2=cond[1], negative=cond[2], cfg_conds=7.5,
                   cfg_cond2_negative=5.0, style="regular")
    core2 = g.add("SamplerCustomAdvanced", noise=g.add("DisableNoise"), guider=guider,
                  sampler=g.add("KSamplerSelect", sampler_name="euler"), sigmas=sig[1], latent_image=core1)
    for name, ref in (("core1", core1), ("ours1", ours1), ("core2", core2[0]), ("ours2", ours2)):
        g.add("Mv2IDTestSaveLatent", samples=ref, filename=f"ho_{name}")
    entry = comfy.run(g.prompt())
    lat = {n: latent(comfy, entry, f"ho_{n}") for n in ("core1", "ours1", "core2", "ours2")}
    assert torch.equal(lat["ours1"], lat["core1"])
    assert torch.equal(lat["ours2"], lat["core2"])
    assert not torch.equal(lat["core1"], lat["core2"])


def test_two_stages_equal_one_run(comfy, ref_files):
    """Split at step 2 of 4 (Euler, full window): the leftover-noise hand-over (x / (1 - sigma), then
    (1 - sigma) x with no new noise, as KSamplerAdvanced does) gives the one-run result. Exact in maths;
    in float32 the latent's round trip through ComfyUI's latent format and the 1/(1 - sigma) scale
    costs about 1e-6 of the latent's range (measured 2.4e-5 of 21), as much as core KSamplerAdvanced two
    stages vs one KSampler run (checked here too, 2.6e-5)."""
    g = Graph()
    model, _, cond = conditioning(g, ref_files)
    one = sampler(g, model, cond, steps=4)
    _, two = _two_stage(g, model, cond, 2)
    core_one = g.add("KSampler", model=model, seed=11, steps=4, cfg=7.5, sampler_name="euler", scheduler="simple",
                     positive=cond[0], negative=cond[1], latent_image=cond[3], denoise=1.0)

    def ksa(latent, add_noise, start, end, leftover):
        return g.add("KSamplerAdvanced", model=model, add_noise=add_noise, noise_seed=11, steps=4, cfg=7.5,
                     sampler_name="euler", scheduler="simple", positive=cond[0], negative=cond[1],
                     latent_image=latent, start_at_step=start, end_at_step=end, return_with_leftover_noise=leftover)
    core_two = ksa(ksa(cond[3], "enable", 0, 2, "enable"), "disable", 2, 10000, "disable")
    for name, ref in (("one", one), ("two", two), ("core_one", core_one), ("core_two", core_two)):
        g.add("Mv2IDTestSaveLatent", samples=ref, filename=f"split_{name}")
    entry = comfy.run(g.prompt())
    lat = {n: latent(comfy, entry, f"split_{n}") for n in ("one", "two", "core_one", "core_two")}
    core_err = float((lat["core_two"] - lat["core_one"]).abs().max())
    ours_err = float((lat["two"] - lat["one"]).abs().max())
    scale = float(lat["one"].abs().max())
    assert core_err <= 1e-5 * scale and ours_err <= 1e-5 * scale, (ours_err, core_err, scale)
