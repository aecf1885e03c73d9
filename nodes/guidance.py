"""Mv2ID Guider and Mv2ID Sampler: Phantom's three-pass reference guidance inside a step window."""
from __future__ import annotations

import torch

import comfy.model_management
import comfy.sample
import comfy.samplers
import comfy.utils
import latent_preview
from comfy_api.latest import io

from ..mv2id_core import guidance as core_guidance
from ..mv2id_core.comfyui.guider import ReferenceGuider

CATEGORY = "Mv2ID"


def _guidance_inputs():
    return [
        io.Float.Input("text_cfg", default=7.5, min=0.0, max=100.0, step=0.1, round=0.01,
                       tooltip="Text guidance scale s_text (Phantom default 7.5)."),
        io.Float.Input("ref_cfg", default=5.0, min=0.0, max=100.0, step=0.1, round=0.01,
                       tooltip="Reference guidance scale s_ref (Phantom default 5.0); 1 disables it."),
        io.Float.Input("ref_start", default=0.0, min=0.0, max=1.0, step=0.01,
                       tooltip="Reference guidance runs from this fraction of the steps..."),
        io.Float.Input("ref_end", default=0.2, min=0.0, max=1.0, step=0.01, tooltip=(
            "...up to this fraction. Outside the window the zero-reference model pass is skipped "
            "(faster); 0..1 runs it on every step, exactly like core Phantom.")),
    ]


def _guidance(text_cfg, ref_cfg, ref_start, ref_end):
    return core_guidance.GuidanceConfig(text_scale=text_cfg, ref_scale=ref_cfg, window_start=ref_start, window_end=ref_end)


def _make_guider(model, positive, negative_text, negative_img_text, config):
    g = ReferenceGuider(model)
    g.set_conds(positive, negative_text, negative_img_text)
    g.set_cfg(config)
    return g


class Mv2IDGuider(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="Mv2IDGuider",
            display_name="Mv2ID Guider",
            category=CATEGORY,
            description=(
                "Reference guidance for SamplerCustomAdvanced: noise = neg + s_ref (mid - neg) + s_text (pos - mid) "
                "with pos = text+refs, mid = negative text+refs, neg = negative text+zero refs. Outside the "
                "reference window the neg pass is skipped."),
            inputs=[
                io.Model.Input("model", tooltip="The (RD-RoPE patched) Wan 2.1 model."),
                io.Conditioning.Input("positive", tooltip="positive from Mv2ID Reference Conditioning."),
                io.Conditioning.Input("negative_text", tooltip="negative_text from Mv2ID Reference Conditioning."),
                io.Conditioning.Input("negative_img_text", tooltip="negative_img_text from Mv2ID Reference Conditioning."),
                *_guidance_inputs(),
            ],
            outputs=[io.Guider.Output()],
        )

    @classmethod
    def execute(cls, model, positive, negative_text, negative_img_text, text_cfg, ref_cfg, ref_start, ref_end) -> io.NodeOutput:
        return io.NodeOutput(_make_guider(model, positive, negative_text, negative_img_text,
                                          _guidance(text_cfg, ref_cfg, ref_start, ref_end)))


class Mv2IDSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="Mv2IDSampler",
            display_name="Mv2ID Sampler",
            category=CATEGORY,
            description=(
                "One-node Mv2ID sampling (like KSampler): ComfyUI's sampler and scheduler with three-pass "
                "reference guidance inside a step window. Previews, progress and interrupt work as usual."),
            inputs=[
                io.Model.Input("model", tooltip="The (RD-RoPE patched) Wan 2.1 model."),
                io.Conditioning.Input("positive", tooltip="positive from Mv2ID Reference Conditioning."),
                io.Conditioning.Input("negative_text", tooltip="negative_text from Mv2ID Reference Conditioning."),
                io.Conditioning.Input("negative_img_text", tooltip="negative_img_text from Mv2ID Reference Conditioning."),
                io.Latent.Input("latent", tooltip="latent from Mv2ID Reference Conditioning."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                             tooltip="Noise seed."),
                io.Int.Input("steps", default=30, min=1, max=10000, tooltip="Sampling steps."),
                *_guidance_inputs(),
                io.Combo.Input("sampler_name", options=comfy.samplers.SAMPLER_NAMES, default="uni_pc",
                               tooltip="ComfyUI sampler."),
                io.Combo.Input("scheduler", options=comfy.samplers.SCHEDULER_NAMES, default="simple",
                               tooltip="ComfyUI scheduler."),
                io.Float.Input("denoise", default=1.0, min=0.0, max=1.0, step=0.01,
                               tooltip="Fraction of the schedule to run (1 for text-to-video)."),
            ],
            outputs=[io.Latent.Output(tooltip="Sampled video latent (reference frames already dropped).")],
        )

    @classmethod
    def execute(cls, model, positive, negative_text, negative_img_text, latent, seed, steps, text_cfg, ref_cfg,
                ref_start, ref_end, sampler_name, scheduler, denoise) -> io.NodeOutput:
        guider = _make_guider(model, positive, negative_text, negative_img_text,
                              _guidance(text_cfg, ref_cfg, ref_start, ref_end))
        sigmas = _sigmas(model, scheduler, steps, denoise)
        latent_image = comfy.sample.fix_empty_latent_channels(model, latent["samples"])
        noise = comfy.sample.prepare_noise(latent_image, seed, latent.get("batch_index"))
        x0_output = {}
        callback = latent_preview.prepare_callback(model, sigmas.shape[-1] - 1, x0_output)
        samples = guider.sample(noise, latent_image, comfy.samplers.sampler_object(sampler_name), sigmas,
                                denoise_mask=latent.get("noise_mask"), callback=callback,
                                disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=seed)
        out = latent.copy()
        out["samples"] = samples.to(comfy.model_management.intermediate_device())
        return io.NodeOutput(out)


def _sigmas(model, scheduler, steps, denoise):
    """The same schedule as core BasicScheduler (so results match SamplerCustomAdvanced graphs)."""
    total = steps
    if denoise < 1.0:
        if denoise <= 0.0:
            return torch.FloatTensor([])
        total = int(steps / denoise)
    ms = model.get_model_object("model_sampling")
    return comfy.samplers.calculate_sigmas(ms, scheduler, total).cpu()[-(steps + 1):]


NODES = [Mv2IDGuider, Mv2IDSampler]
