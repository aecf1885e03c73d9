"""The Mv2ID path under core Wan Context Windows (WanContextWindowsManual) on the real host, tiny models.

Every model call is probed (Mv2IDTestWindowProbe): the window core chose, the references the call
carried and the position ids the model embedded for them. Proofs: one window covering the video equals no
windows bit for bit; at 161 and 241 frames with 81-frame windows every call carries all references at the
ids the RD-RoPE mode defines for that call's own length; passes per step = windows x the step's passes
(the reference window counts sampling steps); every schedule, with and without FreeNoise; EasyCache keeps
one cache per window; bad window settings give clear errors. What core did before the pack handled it is
in mv2id_core/comfyui/context_windows.py."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch

import run_workflow
import workflow_api

from graphs import Graph
from model_path_graphs import H, W, calls, conditioning, error_of, latent, ref_files, sampler
from mv2id_core.guidance import CONDITIONS, REFERENCE, GuidanceConfig
from mv2id_core.latents import latent_frames
from mv2id_core.rdrope import RDRoPEConfig, reference_ids
from mv2id_core.video_io import read_frames

__all__ = ["ref_files"]   # module fixture

ROOT = Path(__file__).resolve().parent.parent
NODE = "WanContextWindowsManual"
H_LEN, W_LEN = H // 16, W // 16        # token grid of the tiny video (8x VAE, 2x2 patches)
# windows of 81 frames (21 latent) with a 32-frame overlap (8 latent on both hosts: 0.3.75 rounds the
# overlap up, 0.33.0 down, and 32 is a multiple of 4): core's standard_static schedule, worked by hand
STATIC_81 = {161: [range(0, 21), range(13, 34), range(20, 41)],
             241: [range(0, 21), range(13, 34), range(26, 47), range(39, 60), range(40, 61)]}


def window_inputs(comfy) -> dict:
    """The host's Wan Context Windows inputs; skip when this ComfyUI has no such node."""
    info = comfy.object_info()
    if NODE not in info:
        pytest.skip(f"this ComfyUI ({comfy.host.description or comfy.host.name}) has no core 'Wan Context "
                    f"Windows' node ({NODE}): long videos need ComfyUI with context windows")
    spec = info[NODE]["input"]
    return {**spec.get("required", {}), **spec.get("optional", {})}


def windows(g, comfy, model, length=81, overlap=32, schedule="standard_static", freenoise=False, retain=False):
    spec = window_inputs(comfy)
    inputs = dict(model=model, context_length=length, context_overlap=overlap, context_schedule=schedule,
                  context_stride=1, closed_loop=False, fuse_method="pyramid")
    for name, value in (("freenoise", freenoise), ("retain_first_frame", retain), ("split_conds_to_windows", False)):
        if name in spec:
            inputs[name] = value
        elif value:
            pytest.skip(f"this ComfyUI's {NODE} has no {name}")
    return g.add(NODE, **inputs)


def long_video(g, comfy, names, key, *, frames, mode="rd", window=None, easycache=None, steps=3, ref_end=1.0,
               cond=None, **sampler_kw):
    """references -> RD-RoPE -> probe -> (EasyCache) -> (Wan Context Windows) -> Mv2ID Sampler -> saved latent.
    Returns (model, vae, conditioning) to share with another run (cond=)."""
    base = cond or conditioning(g, names, length=frames)
    model, _, cond = base
    model = g.add("Mv2IDRDRoPE", model=model, mode=mode, offset=1.0, first_index=1, layout=cond[4])
    model = g.add("Mv2IDTestWindowProbe", model=model, key=key)
    if easycache is not None:
        model = g.add("EasyCache", model=model, reuse_threshold=easycache, start_percent=0.15, end_percent=0.95,
                      verbose=False)
    if window is not None:
        model = windows(g, comfy, model, **window)
    lat = sampler(g, model, cond, steps=steps, ref_end=ref_end, **sampler_kw)
    g.add("Mv2IDTestSaveLatent", samples=lat, filename=key)
    g.add("Mv2IDTestCallReport", _id=f"report_{key}", samples=lat, key=key)
    return base


def by_step(call_list) -> list[list[dict]]:
    """Calls grouped by sampling step (one evaluation per step: euler), in order."""
    steps: dict = defaultdict(list)
    for c in call_list:
        steps[c["sigma"]].append(c)
    return [steps[s] for s in sorted(steps, reverse=True)]


def expected_ref_ids(mode: str, frames: int, num_refs: int = 3) -> list:
    """Reference-token ids the RD-RoPE mode defines for a call of `frames` video frames (auto: no LoRA
    named, so Phantom's vanilla positions)."""
    config = RDRoPEConfig("vanilla" if mode == "auto" else mode, 1.0, 1)
    return reference_ids(num_refs, frames, H_LEN, W_LEN, config, dtype=torch.float32).tolist()


def passed(guidance: GuidanceConfig, step: int, num_steps: int) -> tuple[str, ...]:
    """The conditions the guider hands calc_cond_batch in a step (cond_or_uncond indexes them): all three
    in the reference window, the zero-reference pass left out after it."""
    return CONDITIONS if guidance.step_mode(step, num_steps) == REFERENCE else CONDITIONS[1:]


def check_call(c, mode, refs_by_cond, names=CONDITIONS, num_refs=3):
    """One call: its frames are its window (+ the causal anchor frame), all references ride along unchanged
    (the zero-reference pass its zeros), and their ids are the mode's for this call's own length.
    names: the conditions handed to calc_cond_batch (see passed)."""
    if c["window"] is not None:
        anchor = [] if c["anchor"] is None else [c["anchor"]]
        assert c["frames"] == len(anchor) + len(c["window"]), c
        if c["anchor"] is not None:
            assert c["anchor"] == c["window"][0] - 1, c
    assert c["ref_frames"] == num_refs, c
    assert [refs_by_cond[names[i]] for i in c["cond_or_uncond"]] == c["refs"], c
    assert c["video_t"] == [float(t) for t in range(c["frames"])], c
    assert c["ref_ids"] == expected_ref_ids(mode, c["frames"], num_refs), c


def reference_fingerprints(whole_calls) -> dict:
    """{condition name: fingerprint of its references} from a run without windows."""
    out = {}
    for c in whole_calls:
        out.update({CONDITIONS[i]: fp for i, fp in zip(c["cond_or_uncond"], c["refs"])})
    assert out["middle"] == out["positive"] != out["negative"]
    return out


# --------------------------------------------------------------------------- one window = no windows
@pytest.mark.parametrize("context_length", [33, 81])
def test_one_window_covering_the_video_equals_no_windows(comfy, ref_files, context_length):
    """33 frames in a window of 33 (exactly the video) or 81 (longer): core samples the video whole, bit
    for bit as without the node. A length that is not 4n+1 (80) is core's documented rounding down (77)."""
    window_inputs(comfy)
    g = Graph()
    cond = long_video(g, comfy, ref_files, "whole", frames=33, steps=2)
    long_video(g, comfy, ref_files, f"one_{context_length}", frames=33, steps=2, cond=cond,
               window=dict(length=context_length, overlap=8))
    entry = comfy.run(g.prompt())
    assert torch.equal(latent(comfy, entry, f"one_{context_length}"), latent(comfy, entry, "whole"))
    assert all(c["window"] is None for c in calls(entry, f"report_one_{context_length}"))
    assert "[Mv2ID] context windows not used: the video, 9 latent frames (33 video frames), fits" in comfy.log_tail(200)


def test_a_window_length_not_4n_plus_1_is_rounded_down_by_core(comfy, ref_files):
    """context_length 80 runs exactly as 77 (core: 'Must be 4*n + 1'; it keeps (80 - 1) // 4 + 1 latent frames)."""
    window_inputs(comfy)
    g = Graph()
    cond = long_video(g, comfy, ref_files, "len77", frames=161, steps=2, window=dict(length=77, overlap=16))
    long_video(g, comfy, ref_files, "len80", frames=161, steps=2, cond=cond, window=dict(length=80, overlap=16))
    entry = comfy.run(g.prompt())
    assert torch.equal(latent(comfy, entry, "len80"), latent(comfy, entry, "len77"))
    assert {len(c["window"]) for c in calls(entry, "report_len80")} == {latent_frames(77)}


# --------------------------------------------------------------------------- references and ids per window
@pytest.mark.parametrize("frames,mode,outside", [(161, "rd", "text_cfg"), (161, "vanilla", "no_cfg"),
                                                 (241, "rd", "no_cfg"), (241, "auto", "text_cfg")])
def test_every_window_carries_all_references_at_their_ids(comfy, ref_files, frames, mode, outside):
    """81-frame windows over 161 / 241 frames: each step runs core's windows, every call carries the three
    references at the ids of the mode for its own length, and a step's passes are windows x the passes of
    the step's mode (reference window on step 0 of 3: counted in sampling steps, not in windows)."""
    g = Graph()
    cond = long_video(g, comfy, ref_files, f"whole_{frames}", frames=frames, mode=mode, steps=1)
    key = f"win_{frames}_{mode}"
    long_video(g, comfy, ref_files, key, frames=frames, mode=mode, window={}, ref_end=0.34, outside_window=outside,
               cond=cond)
    entry = comfy.run(g.prompt())
    refs = reference_fingerprints(calls(entry, f"report_whole_{frames}"))
    steps = by_step(calls(entry, f"report_{key}"))
    guidance = GuidanceConfig(7.5, 5.0, 0.0, 0.34, outside)
    assert len(steps) == 3
    for i, step in enumerate(steps):
        assert [c["window"] for c in step] == [list(w) for w in STATIC_81[frames]], step
        assert sum(c["batch"] for c in step) == len(STATIC_81[frames]) * guidance.passes(i, 3)
        for c in step:
            check_call(c, mode, refs, passed(guidance, i, 3))
    assert torch.isfinite(latent(comfy, entry, key)).all()
    assert "every window with all 3 references at its own RD-RoPE positions" in comfy.log_tail(300)


@pytest.mark.parametrize("schedule", ["standard_static", "standard_uniform", "looped_uniform", "batched"])
@pytest.mark.parametrize("freenoise", [False, True])
def test_every_schedule_with_and_without_freenoise(comfy, ref_files, schedule, freenoise):
    """Any schedule (windows that move per step, wrap around the end, or cut without overlap), with or
    without FreeNoise's noise shuffling: every frame in a window on every step, every call with all
    references at its own ids, passes per step = that step's windows x the step's passes."""
    g = Graph()
    cond = long_video(g, comfy, ref_files, "whole_sched", frames=161, steps=1)
    key = f"sched_{schedule}_{freenoise}"
    long_video(g, comfy, ref_files, key, frames=161, steps=3, ref_end=0.34, cond=cond,
               window=dict(schedule=schedule, freenoise=freenoise))
    entry = comfy.run(g.prompt())
    refs = reference_fingerprints(calls(entry, "report_whole_sched"))
    guidance = GuidanceConfig(7.5, 5.0, 0.0, 0.34)
    for i, step in enumerate(by_step(calls(entry, f"report_{key}"))):
        assert {f for c in step for f in c["window"]} == set(range(latent_frames(161))), step
        assert sum(c["batch"] for c in step) == len(step) * guidance.passes(i, 3)
        for c in step:
            check_call(c, "rd", refs, passed(guidance, i, 3))
    assert torch.isfinite(latent(comfy, entry, key)).all()


def test_freenoise_changes_the_noise_not_the_references(comfy, ref_files):
    window_inputs(comfy)
    g = Graph()
    cond = long_video(g, comfy, ref_files, "fn_off", frames=161, steps=2, window=dict(freenoise=False))
    long_video(g, comfy, ref_files, "fn_on", frames=161, steps=2, cond=cond, window=dict(freenoise=True))
    entry = comfy.run(g.prompt())
    assert not torch.equal(latent(comfy, entry, "fn_on"), latent(comfy, entry, "fn_off"))
    assert [c["refs"] for c in calls(entry, "report_fn_on")] == [c["refs"] for c in calls(entry, "report_fn_off")]


def test_the_reference_window_counts_steps_with_a_multi_evaluation_sampler(comfy, ref_files):
    """Heun evaluates twice per step (its corrector at the next sigma): window 0..0.4 of 5 steps = steps 0
    and 1, as without windows, each evaluation run on each of the 3 windows."""
    g = Graph()
    long_video(g, comfy, ref_files, "heun", frames=161, steps=5, ref_end=0.4, window={}, sampler_name="heun")
    got = calls(comfy.run(g.prompt()), "report_heun")
    evaluations = [got[i:i + 3] for i in range(0, len(got), 3)]
    assert [sorted(c["window"][0] for c in e) for e in evaluations] == [[0, 13, 20]] * 9
    assert [{c["batch"] for c in e} for e in evaluations] == [{3}] * 4 + [{2}] * 5


def test_references_stay_whole_when_as_many_as_the_latent_frames(comfy, ref_files):
    """Four references on a 13-frame video (4 latent frames): ComfyUI 0.33.0 would cut them like a per-frame
    condition (3 of 4 in the first window); every window must get all four."""
    g = Graph()
    names = ref_files + ref_files[:1]
    cond = long_video(g, comfy, names, "whole_4", frames=13, steps=1)
    long_video(g, comfy, names, "four", frames=13, steps=2, cond=cond, window=dict(length=9, overlap=4))
    entry = comfy.run(g.prompt())
    refs = reference_fingerprints(calls(entry, "report_whole_4"))
    got = calls(entry, "report_four")
    assert {tuple(c["window"]) for c in got} == {(0, 1, 2), (1, 2, 3)}
    for c in got:
        check_call(c, "rd", refs, num_refs=4)


def test_retain_first_frame_leaves_the_references_alone(comfy, ref_files):
    """retain_first_frame keeps frame 0 of per-frame conditions in every window; the references are none, so
    the result is the same as without it, bit for bit."""
    g = Graph()
    cond = long_video(g, comfy, ref_files, "retain_off", frames=161, steps=2, window={})
    long_video(g, comfy, ref_files, "retain_on", frames=161, steps=2, cond=cond, window=dict(retain=True))
    entry = comfy.run(g.prompt())
    assert torch.equal(latent(comfy, entry, "retain_on"), latent(comfy, entry, "retain_off"))


# --------------------------------------------------------------------------- EasyCache
def test_easycache_keeps_one_cache_per_window(comfy, ref_files):
    """EasyCache under windows: each window keeps its own cache (the same one on every step, none shared),
    a reused window gets exactly its own last change back, and some window evaluations are reused (core's
    one shared state stopped with a size error on 0.33.0 and mixed windows up on 0.3.75)."""
    g = Graph()
    long_video(g, comfy, ref_files, "easy", frames=161, steps=8, ref_end=0.2, window={}, easycache=0.8)
    entry = comfy.run(g.prompt())
    got = calls(entry, "report_easy")
    cache_of = defaultdict(set)
    for c in got:
        cache_of[(tuple(c["window"]), c["anchor"])].add(c["cache"])
    assert len(cache_of) == 3 and all(len(v) == 1 for v in cache_of.values())
    assert len({next(iter(v)) for v in cache_of.values()}) == 3
    reused = [c for c in got if c["reused"]]
    assert reused and all(c["reuse_error"] is not None and c["reuse_error"] < 1e-5 for c in reused), reused
    assert torch.isfinite(latent(comfy, entry, "easy")).all()
    assert "[Mv2ID] EasyCache under context windows: one cache per window (3 windows)" in comfy.log_tail(300)


def test_easycache_that_reuses_nothing_changes_nothing(comfy, ref_files):
    g = Graph()
    cond = long_video(g, comfy, ref_files, "plain", frames=161, steps=4, ref_end=0.5, window={})
    long_video(g, comfy, ref_files, "cache0", frames=161, steps=4, ref_end=0.5, window={}, easycache=0.0, cond=cond)
    entry = comfy.run(g.prompt())
    assert torch.equal(latent(comfy, entry, "cache0"), latent(comfy, entry, "plain"))


def test_lazycache_over_the_windows_reuses_whole_steps(comfy, ref_files):
    """LazyCache decides per model evaluation, before the windows: a reused step runs no window at all."""
    g = Graph()
    model, _, cond = conditioning(g, ref_files, length=161)
    model = g.add("Mv2IDRDRoPE", model=model, mode="rd", offset=1.0, first_index=1, layout=cond[4])
    model = g.add("Mv2IDTestWindowProbe", model=model, key="lazy")
    model = g.add("LazyCache", model=model, reuse_threshold=0.8, start_percent=0.15, end_percent=0.95, verbose=False)
    lat = sampler(g, windows(g, comfy, model), cond, steps=8, ref_end=0.2)
    g.add("Mv2IDTestSaveLatent", samples=lat, filename="lazy")
    g.add("Mv2IDTestCallReport", _id="report_lazy", samples=lat, key="lazy")
    entry = comfy.run(g.prompt())
    steps = by_step(calls(entry, "report_lazy"))
    assert 0 < len(steps) < 8 and all(len(step) == 3 for step in steps), [len(s) for s in steps]
    assert torch.isfinite(latent(comfy, entry, "lazy")).all()


# --------------------------------------------------------------------------- bad settings
@pytest.mark.parametrize("overlap,latent_overlap", [(84, 21), (88, 22)])
def test_an_overlap_not_below_the_window_length_is_refused(healthy, ref_files, overlap, latent_overlap):
    """Core would run no window at all (a NaN latent: overlap above the length) or stop with
    'range() arg 3 must not be zero' (equal)."""
    g = Graph()
    long_video(g, healthy, ref_files, "overlap", frames=161, steps=2, window=dict(overlap=overlap))
    msg = error_of(healthy, g.prompt())
    assert (f"the context windows' overlap ({latent_overlap} latent frames, about {latent_overlap * 4} video frames) "
            f"is not smaller than their length (21 latent frames = 81 video frames)") in msg, msg
    assert "set context_overlap below context_length" in msg


def test_a_schedule_that_leaves_frames_out_is_refused(healthy, ref_files):
    """81 frames in 33-frame windows, overlap 8, context_stride 2, standard_uniform: core's step 2 leaves two
    latent frames in no window (they would come out as NaN)."""
    g = Graph()
    model, _, cond = conditioning(g, ref_files, length=81)
    node = windows(g, healthy, model, length=33, overlap=8, schedule="standard_uniform")   # 2 latent frames on both
    g.nodes[node.nid]["inputs"]["context_stride"] = 2
    g.add("Mv2IDTestSaveLatent", samples=sampler(g, node, cond, steps=4), filename="holes")
    msg = error_of(healthy, g.prompt())
    assert "the context schedule standard_uniform leaves latent frames [" in msg and "on step 2" in msg, msg


def test_a_video_length_not_4n_plus_1_is_refused(healthy, ref_files):
    window_inputs(healthy)
    g = Graph()
    long_video(g, healthy, ref_files, "len160", frames=160, steps=2, window={})
    msg = error_of(healthy, g.prompt())
    assert "length 160 is not of the form 4n+1" in msg, msg


# --------------------------------------------------------------------------- the workflow, by the demo's path
def test_the_demo_runs_the_long_video_workflow(comfy, tmp_path):
    """tools/run_workflow.py on example_workflows/mv2id_long_video.json with the tiny models: the video is as
    many context windows long as the workflow's (161 frames in 81-frame windows), decoded, saved; an older
    ComfyUI's Wan Context Windows without FreeNoise is named in the demo's notes."""
    info = comfy.object_info()
    window_inputs(comfy)
    workflow = ROOT / "example_workflows" / "mv2id_long_video.json"
    api = workflow_api.ui_to_api(json.loads(workflow.read_text()), info, optional_types=run_workflow.NEWER_CORE)
    (sampled,) = {n["inputs"]["length"] for n in workflow_api.rewrite_for_tiny_models(api).values()
                  if n["class_type"] == "Mv2IDReferenceConditioning"}
    assert sampled > workflow_api.TINY_RUN["window"]          # still in windows
    env = dict(os.environ, MV2ID_COMFYUI=str(comfy.host.comfyui), MV2ID_PYTHON=comfy.host.python,
               MV2ID_TINY_MODELS=str(comfy.host.tiny_models))
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "run_workflow.py"), "--workflow", str(workflow),
                        "--mode", "tiny", "--out", str(tmp_path)], capture_output=True, text=True, timeout=900,
                       env=env, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    (video,) = [Path(line) for line in r.stdout.split() if line.endswith(".mp4")]
    frames, total = read_frames(video)
    interpolated = "FrameInterpolate left out" not in r.stderr
    assert total == (2 * sampled - 1 if interpolated else sampled)
    assert np.stack(frames).std() > 0
    freenoise = "freenoise" in window_inputs(comfy)
    assert ("has no 'freenoise' setting: sampled without FreeNoise" in r.stderr) != freenoise, r.stderr


# --------------------------------------------------------------------------- the plan, against core's schedules
@pytest.mark.parametrize("schedule", ["standard_static", "standard_uniform", "looped_uniform", "batched"])
def test_the_windows_checked_are_cores(comfy_modules, schedule):
    """windows_per_step runs core's own schedule function for every step: the same windows as core's handler
    gives (in-process, ComfyUI's IndexListContextHandler), and the handler is left on its own step."""
    import comfy.context_windows as cw
    from mv2id_core.comfyui.context_windows import windows_per_step
    handler = cw.IndexListContextHandler(cw.get_matching_context_schedule(schedule),
                                         cw.get_matching_fuse_method("pyramid"), 21, 8, 1, False, dim=2)
    planned = windows_per_step(handler, 61, 6)
    for step in range(6):
        handler._step = step
        assert planned[step] == [list(w) for w in cw.get_matching_context_schedule(schedule).func(61, handler, {})]
    assert handler._step == 5
    assert windows_per_step(handler, 21, 3) == [[list(range(21))]] * 3      # fits in one window: core runs none


def test_overlaps_and_holes_found_before_sampling(comfy_modules):
    import comfy.context_windows as cw
    from mv2id_core.comfyui.context_windows import windows_per_step
    from mv2id_core.errors import InputError

    def handler(schedule, length, overlap, stride=1):
        return cw.IndexListContextHandler(cw.get_matching_context_schedule(schedule),
                                          cw.get_matching_fuse_method("pyramid"), length, overlap, stride, False, dim=2)
    for schedule in ("standard_static", "standard_uniform", "looped_uniform"):
        with pytest.raises(InputError, match="is not smaller than their length"):
            windows_per_step(handler(schedule, 21, 21), 41, 2)
    assert len(windows_per_step(handler("batched", 21, 30), 41, 1)[0]) == 2   # batched has no overlap
    with pytest.raises(InputError, match=r"leaves latent frames \[.*\] of 21 in no window on step 2"):
        windows_per_step(handler("standard_uniform", 9, 2, stride=2), 21, 4)


@pytest.mark.parametrize("schedule", ["standard_static", "batched"])
def test_overlap_linear_without_overlap_is_refused_before_sampling(comfy_modules, schedule):
    """Core's overlap-linear weights ramp over context_overlap frames: at 0 they stop every multi-window run
    with a tensor size error (checked here on core's own function), so the plan refuses it with the fix."""
    import comfy.context_windows as cw
    from mv2id_core.comfyui.context_windows import windows_per_step
    from mv2id_core.errors import InputError

    def handler(fuse, overlap):
        return cw.IndexListContextHandler(cw.get_matching_context_schedule(schedule), cw.get_matching_fuse_method(fuse),
                                          21, overlap, 1, False, dim=2)
    with pytest.raises(RuntimeError):          # core's weights, called as core calls them (arguments differ by host)
        cw.get_matching_fuse_method("overlap-linear").func(21, sigma=None, handler=handler("overlap-linear", 0),
                                                           full_length=41, idxs=list(range(21)), context_overlap=0)
    with pytest.raises(InputError, match="overlap-linear blends the windows over their overlap, and context_overlap "
                                         "is 0 latent frames: .* choose fuse_method pyramid or flat"):
        windows_per_step(handler("overlap-linear", 0), 41, 2)
    assert windows_per_step(handler("overlap-linear", 0), 21, 2) == [[list(range(21))]] * 2   # one window: fine
    assert len(windows_per_step(handler("overlap-linear", 4), 41, 1)[0]) >= 2
    assert len(windows_per_step(handler("pyramid", 0), 41, 1)[0]) >= 2
