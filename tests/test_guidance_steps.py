"""Which sampling step a model evaluation belongs to, checked against every sampler of the running
ComfyUI: each sampler runs for real (its own function, on the tiny Wan model's flow schedule) with a
guider that records its evaluations and step callbacks instead of running the model."""
from __future__ import annotations

import pytest
import torch

import train_helpers as T
import comfy_server

# own step schedules (the callbacks do not follow the sigmas): no per-step structure to check
ADAPTIVE = {"dpm_fast", "dpm_adaptive"}


@pytest.fixture(scope="module")
def model(comfy_modules):
    import comfy.sd
    return comfy.sd.load_diffusion_model(str(T.tiny_unet()))


def _record(model, sampler_name, steps=5):
    """[("E", sigma) | ("C", i)] in the order the sampler made them, and the schedule."""
    import comfy.samplers

    events = []

    class Recorder(comfy.samplers.CFGGuider):
        def predict_noise(self, x, timestep, model_options={}, seed=None):
            events.append(("E", float(timestep.flatten()[0])))
            # through cfg_function so the CFG++ samplers get the uncond they capture
            return comfy.samplers.cfg_function(self.inner_model, x * 0.5, x * 0.4, 1.0, x, timestep,
                                               model_options=model_options)

    sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "simple", steps)
    g = Recorder(model)
    empty = [[torch.zeros(1, 4, 4096), {}]]
    g.set_conds(empty, empty)
    g.set_cfg(1.0)
    lat = torch.zeros(1, 16, 1, 4, 4)
    g.sample(torch.randn(lat.shape, generator=torch.Generator().manual_seed(0)), lat,
             comfy.samplers.sampler_object(sampler_name), sigmas.clone(),
             callback=lambda i, x0, x, n: events.append(("C", int(i))), disable_pbar=True, seed=0)
    return events, sigmas


def _truth(events):
    """Step of each evaluation: the one right before callback i is step i's first; the others belong
    to the step last called back (0 before any callback)."""
    steps, current = [], 0
    for k, (kind, v) in enumerate(events):
        if kind == "C":
            current = v
            continue
        nxt = events[k + 1] if k + 1 < len(events) else None
        steps.append(nxt[1] if nxt and nxt[0] == "C" else current)
    return steps


def _tracked(events, sigmas, corrects):
    from mv2id_core.guidance import StepTracker
    tracker, out = StepTracker(sigmas.tolist(), corrects), []
    for kind, v in events:
        if kind == "C":
            tracker.callback(v)
        else:
            out.append(tracker.evaluation(v))
    return out


def _sampler_names():
    try:
        comfy_server.HostConfig.from_env()
    except RuntimeError:   # collected without a host: no samplers to list (the tests are skipped)
        return []
    from mv2id_train import comfy_env

    comfy_env.import_comfy()
    import comfy.samplers
    return [n for n in comfy.samplers.SAMPLER_NAMES if n not in ADAPTIVE]


@pytest.mark.parametrize("sampler_name", _sampler_names())
def test_every_evaluation_gets_the_step_the_sampler_is_on(model, sampler_name):
    import comfy.samplers
    from mv2id_core.comfyui.guider import corrects_at_next_sigma

    events, sigmas = _record(model, sampler_name)
    truth = _truth(events)
    assert sorted(set(truth)) == list(range(len(sigmas) - 1)), events       # one or more evaluations per step
    corrects = corrects_at_next_sigma(comfy.samplers.sampler_object(sampler_name))
    assert _tracked(events, sigmas, corrects) == truth, events


def test_an_unlisted_corrector_is_learned_after_one_step(model):
    """A Heun-like sampler missing from the list: only the first step boundary can be wrong."""
    events, sigmas = _record(model, "heun")
    truth, got = _truth(events), _tracked(events, sigmas, None)
    wrong = [k for k, (a, b) in enumerate(zip(got, truth)) if a != b]
    assert wrong == [1], (got, truth)        # step 0's corrector, before the second evaluation showed it
