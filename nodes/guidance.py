"""Mv2ID Guider and Mv2ID Sampler: Phantom's three-pass reference guidance inside a step window."""
from __future__ import annotations

import torch

import comfy.model_management
import comfy.sample
import comfy.samplers
import comfy.utils
import latent_preview
from comfy_api.latest import io

from mv2id_core import guidance as core_guidance
from mv2id_core.comfyui.guider import ReferenceGuider
from mv2id_core.errors import InputError
from .utils import MODEL_TOOLTIP, Mv2IDNode, check_option, log_inert

CATEGORY = "Mv2ID"
_DEFAULT = core_guidance.GuidanceConfig()
# KSamplerAdvanced's values for the two-stage hand-over (core nodes.py), in its order
ADD_NOISE = ("enable", "disable")
LEFTOVER_NOISE = ("disable", "enable")
LAST_STEP = 10000


def _guidance_inputs():
    return [
        io.Float.Input("text_cfg", default=_DEFAULT.text_scale, min=0.0, max=100.0, step=0.1, round=0.01,
                       tooltip="Text guidance scale s_text (Phantom default 7.5)."),
        io.Float.Input("ref_cfg", default=_DEFAULT.ref_scale, min=0.0, max=100.0, step=0.1, round=0.01,
                       tooltip="Reference guidance scale s_ref (Phantom default 5.0); 1 disables it."),
        io.Float.Input("ref_start", default=_DEFAULT.window_start, min=0.0, max=1.0, step=0.01,
                       tooltip="Reference guidance (3 model passes per step) runs from this fraction of the "
                               "steps this node samples..."),
        io.Float.Input("ref_end", default=_DEFAULT.window_end, min=0.0, max=1.0, step=0.01, tooltip=(
            "...up to this fraction. 0..1 runs it on every step, exactly like core Phantom and Phantom's own "
            "inference; the default 0..0.2 keeps it for the early steps, where pose and identity are laid "
            "down, and saves a third of the model passes on the rest (faster, not measured for likeness).")),
    ]


def _outside_input():
    return io.Combo.Input("outside_window", options=list(core_guidance.OUTSIDE_MODES),
                          default=core_guidance.OUTSIDE_MODES[0], optional=True, tooltip=(
        "What runs on the steps outside the reference window. text_cfg (default): text CFG, 2 model passes "
        "per step, for normal Phantom-Wan sampling (20-50 steps). no_cfg: 1 pass per step, for distilled "
        "few-step LoRAs run at cfg 1 (lightx2v, CausVid; e.g. 8 steps with the window on the first step): "
        "the full reference guidance where it matters, no CFG after it."))


def _guidance(text_cfg, ref_cfg, ref_start, ref_end, outside_window):
    check_option(outside_window, core_guidance.OUTSIDE_MODES, "outside_window")
    try:
        return core_guidance.GuidanceConfig(text_scale=text_cfg, ref_scale=ref_cfg, window_start=ref_start,
                                            window_end=ref_end, outside=outside_window)
    except ValueError as e:
        raise InputError(f"{e}: set ref_start <= ref_end, both from 0 to 1.") from None


def _make_guider(model, positive, negative_text, negative_img_text, config):
    g = ReferenceGuider(model)
    g.set_conds(positive, negative_text, negative_img_text)
    g.set_cfg(config)
    return g


_CONDS = [
    io.Conditioning.Input("positive", tooltip="positive from Mv2ID Reference Conditioning."),
    io.Conditioning.Input("negative_text", tooltip="negative_text from Mv2ID Reference Conditioning."),
    io.Conditioning.Input("negative_img_text", tooltip="negative_img_text from Mv2ID Reference Conditioning."),
]


class Mv2IDGuider(Mv2IDNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="Mv2IDGuider",
            display_name="Mv2ID Guider",
            category=CATEGORY,
            description=(
                "Reference guidance for SamplerCustomAdvanced: noise = neg + s_ref (mid - neg) + s_text (pos - mid) "
                "with pos = text+refs, mid = negative text+refs, neg = negative text+zero refs. Outside the "
                "reference window the neg pass is skipped (text CFG), or only pos runs (no_cfg). Under core Wan "
                "Context Windows every window gets all references."),
            inputs=[
                io.Model.Input("model", tooltip=MODEL_TOOLTIP),
                *_CONDS,
                *_guidance_inputs(),
                _outside_input(),
            ],
            outputs=[io.Guider.Output()],
            hidden=[io.Hidden.unique_id],       # to show inert inputs on the node
        )

    @classmethod
    def execute(cls, model, positive, negative_text, negative_img_text, text_cfg, ref_cfg, ref_start, ref_end,
                outside_window=core_guidance.OUTSIDE_MODES[0]) -> io.NodeOutput:
        config = _guidance(text_cfg, ref_cfg, ref_start, ref_end, outside_window)
        log_inert("Guider", core_guidance.inert_inputs(config), cls)
        return io.NodeOutput(_make_guider(model, positive, negative_text, negative_img_text, config))


class Mv2IDSampler(Mv2IDNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="Mv2IDSampler",
            display_name="Mv2ID Sampler",
            category=CATEGORY,
            description=(
                "One-node Mv2ID sampling (like KSampler / KSamplerAdvanced, same schedule and noise): ComfyUI's "
                "sampler and scheduler with three-pass reference guidance inside a step window. Previews, "
                "progress and interrupt work as usual. start/end steps and leftover noise hand a latent to or "
                "from another sampler, e.g. a Wan 2.2 A14B high-noise KSamplerAdvanced for the first steps. For "
                "long videos put core Wan Context Windows on the model: every window gets all references."),
            inputs=[
                io.Model.Input("model", tooltip=MODEL_TOOLTIP),
                *_CONDS,
                io.Latent.Input("latent", tooltip=(
                    "latent from Mv2ID Reference Conditioning, or (second stage) the latent of a sampler that "
                    "returned it with leftover noise.")),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                             tooltip="Noise seed."),
                io.Int.Input("steps", default=50, min=1, max=10000, tooltip=(
                    "Sampling steps of the whole schedule (Phantom's default is 50; 8 with a distilled LoRA).")),
                *_guidance_inputs(),
                io.Combo.Input("sampler_name", options=comfy.samplers.SAMPLER_NAMES, default="uni_pc",
                               tooltip="ComfyUI sampler (Phantom samples with UniPC)."),
                io.Combo.Input("scheduler", options=comfy.samplers.SCHEDULER_NAMES, default="simple",
                               tooltip="ComfyUI scheduler."),
                io.Float.Input("denoise", default=1.0, min=0.0, max=1.0, step=0.01,
                               tooltip="Fraction of the schedule to run (1 for text-to-video)."),
                # optional, appended: saved workflows fill widgets by position
                _outside_input(),
                io.Combo.Input("add_noise", options=list(ADD_NOISE), default=ADD_NOISE[0], optional=True, tooltip=(
                    "As KSamplerAdvanced: enable for a fresh start; disable for the second stage, whose latent "
                    "already holds the first stage's leftover noise.")),
                io.Int.Input("start_at_step", default=0, min=0, max=LAST_STEP, optional=True, tooltip=(
                    "As KSamplerAdvanced: first step of the schedule to run (the second stage starts where the "
                    "first ended). The reference window is a fraction of the steps this node runs.")),
                io.Int.Input("end_at_step", default=LAST_STEP, min=0, max=LAST_STEP, optional=True, tooltip=(
                    "As KSamplerAdvanced: the step to stop at (10000 = the end of the schedule).")),
                io.Combo.Input("return_with_leftover_noise", options=list(LEFTOVER_NOISE), default=LEFTOVER_NOISE[0],
                               optional=True, tooltip=(
                    "As KSamplerAdvanced: enable to hand a partly denoised latent to a following sampler "
                    "(add_noise disable, start_at_step = this end_at_step); disable denoises to the end.")),
            ],
            outputs=[io.Latent.Output(tooltip="Sampled video latent (reference frames already dropped).")],
            hidden=[io.Hidden.unique_id],       # to show inert inputs on the node
        )

    @classmethod
    def execute(cls, model, positive, negative_text, negative_img_text, latent, seed, steps, text_cfg, ref_cfg,
                ref_start, ref_end, sampler_name, scheduler, denoise, outside_window=core_guidance.OUTSIDE_MODES[0],
                add_noise=ADD_NOISE[0], start_at_step=0, end_at_step=LAST_STEP,
                return_with_leftover_noise=LEFTOVER_NOISE[0]) -> io.NodeOutput:
        check_option(sampler_name, comfy.samplers.SAMPLER_NAMES, "sampler_name")
        check_option(scheduler, comfy.samplers.SCHEDULER_NAMES, "scheduler")
        check_option(add_noise, ADD_NOISE, "add_noise")
        check_option(return_with_leftover_noise, LEFTOVER_NOISE, "return_with_leftover_noise")
        config = _guidance(text_cfg, ref_cfg, ref_start, ref_end, outside_window)
        guider = _make_guider(model, positive, negative_text, negative_img_text, config)
        sigmas = schedule(model, steps, sampler_name, scheduler, denoise, start_at_step, end_at_step,
                          force_full_denoise=return_with_leftover_noise == "disable")
        log_inert("Sampler", core_guidance.inert_inputs(config, len(sigmas) - 1, add_noise != "disable"), cls)
        latent_image = comfy.sample.fix_empty_latent_channels(model, latent["samples"])
        if add_noise == "disable":   # what core common_ksampler uses: zeros on the CPU
            noise = torch.zeros(latent_image.size(), dtype=latent_image.dtype, layout=latent_image.layout, device="cpu")
        else:
            noise = comfy.sample.prepare_noise(latent_image, seed, latent.get("batch_index"))
        x0_output = {}
        callback = latent_preview.prepare_callback(model, sigmas.shape[-1] - 1, x0_output)
        samples = guider.sample(noise, latent_image, comfy.samplers.sampler_object(sampler_name), sigmas,
                                denoise_mask=latent.get("noise_mask"), callback=callback,
                                disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=seed)
        out = latent.copy()
        out["samples"] = samples.to(comfy.model_management.intermediate_device())
        return io.NodeOutput(out)


def schedule(model, steps, sampler_name, scheduler, denoise=1.0, start_step=0, last_step=LAST_STEP,
             force_full_denoise=True) -> torch.Tensor:
    """The sigmas core KSampler / KSamplerAdvanced run for these settings: its own schedule (one extra
    step, penultimate sigma dropped, for uni_pc and dpm_2), cut at last_step (its sigma set to 0 unless
    the noise is left over) and then from start_step. InputError when nothing would be sampled (core
    then returns the latent unchanged: a blank or still noisy video)."""
    ks = comfy.samplers.KSampler(model, steps=steps, device="cpu", sampler=sampler_name, scheduler=scheduler,
                                 denoise=denoise, model_options=model.model_options)
    sigmas = ks.sigmas.cpu().clone()
    if len(sigmas) <= 1:
        raise InputError(f"denoise {denoise} leaves no step to sample: set denoise above 0 (1 for text-to-video).")
    if last_step is not None and last_step < len(sigmas) - 1:
        sigmas = sigmas[:last_step + 1]
        if force_full_denoise:
            sigmas[-1] = 0
    if start_step >= len(sigmas) - 1:
        raise InputError(
            f"start_at_step {start_step} is at or after the last step to run ({len(sigmas) - 1}, from steps {steps} "
            f"and end_at_step {last_step}): nothing would be sampled. Set start_at_step below end_at_step and steps "
            f"(for a second stage: the first stage's end_at_step).")
    return sigmas[start_step:]


NODES = [Mv2IDGuider, Mv2IDSampler]
