"""The Mv2ID model path: reference conditioning, RD-RoPE patch, guider and sampler nodes."""
from __future__ import annotations


import torch

import comfy.model_management
import comfy.sample
import folder_paths
import comfy.samplers
import comfy.utils
import latent_preview
import node_helpers
import nodes as comfy_nodes
from comfy_api.latest import io

from ..mv2id_core import guidance as core_guidance
from ..mv2id_core import rdrope as core_rdrope
from ..mv2id_core import references as core_refs
from ..mv2id_core.host_adapter import Mv2IDGuider as _Guider, patch_rdrope, zero_reference_latent
from .types import ReferenceLayout

CATEGORY = "Mv2ID"
GuiderType = io.Guider


class Mv2IDReferenceConditioning(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="Mv2IDReferenceConditioning",
            display_name="Mv2ID Reference Conditioning",
            category=CATEGORY,
            description=(
                "Multi-view reference conditioning for Wan 2.1. Each reference image is fitted to the video "
                "size, VAE-encoded on its own as one latent frame, and joined after the video on the time "
                "axis. Outputs the three conditionings reference guidance needs (text+refs, negative "
                "text+refs, negative text+zero refs), the empty video latent, and the reference layout."),
            inputs=[
                io.Conditioning.Input("positive", tooltip="Text conditioning (umT5) describing the video."),
                io.Conditioning.Input("negative", tooltip="Negative text conditioning."),
                io.Vae.Input("vae", tooltip="The Wan 2.1 VAE (wan_2.1_vae.safetensors)."),
                io.Image.Input("reference_images", tooltip=(
                    "Face references, 1 or more views as an IMAGE batch; batch order is view order. "
                    "Use 'Mv2ID Face Views' to make clean head-and-shoulder crops on white.")),
                io.Int.Input("width", default=832, min=16, max=comfy_nodes.MAX_RESOLUTION, step=16,
                             tooltip="Video width in pixels (multiple of 16). Wan 2.1 is trained at 832x480."),
                io.Int.Input("height", default=480, min=16, max=comfy_nodes.MAX_RESOLUTION, step=16,
                             tooltip="Video height in pixels (multiple of 16)."),
                io.Int.Input("length", default=81, min=1, max=comfy_nodes.MAX_RESOLUTION, step=4,
                             tooltip="Number of video frames; must be 4n+1 (81 = 5 s at 16 fps)."),
                io.Int.Input("batch_size", default=1, min=1, max=64, tooltip="Videos generated at once."),
                io.Combo.Input("fit", options=list(core_refs.FIT_MODES), default="pad_white", tooltip=(
                    "How references are fitted to the video size: pad_white keeps the whole image and its "
                    "aspect ratio on a white canvas (official Phantom); center_crop crops to the video's "
                    "aspect (ComfyUI core's Phantom node); stretch ignores the aspect; none requires the "
                    "exact size.")),
            ],
            outputs=[
                io.Conditioning.Output("positive_out", display_name="positive",
                                       tooltip="Text + references."),
                io.Conditioning.Output("negative_text_out", display_name="negative_text",
                                       tooltip="Negative text + references."),
                io.Conditioning.Output("negative_img_text_out", display_name="negative_img_text",
                                       tooltip="Negative text + zero references."),
                io.Latent.Output("latent_out", display_name="latent", tooltip="Empty video latent to sample."),
                ReferenceLayout.Output("layout_out", display_name="layout",
                                       tooltip="How the references were packed (for the RD-RoPE patch)."),
            ],
        )

    @classmethod
    def execute(cls, positive, negative, vae, reference_images, width, height, length, batch_size, fit) -> io.NodeOutput:
        core_refs.check_length(length)
        refs = core_refs.fit_references(reference_images, width, height, fit)
        ref_latent = core_refs.encode_references(refs, lambda img: vae.encode(img))
        layout = core_refs.reference_layout(refs.shape[0], width, height, length, batch_size, fit)
        latent = torch.zeros([batch_size, 16, core_refs.latent_frames(length), height // 8, width // 8],
                             device=comfy.model_management.intermediate_device())
        pos = node_helpers.conditioning_set_values(positive, {"time_dim_concat": ref_latent})
        neg_text = node_helpers.conditioning_set_values(negative, {"time_dim_concat": ref_latent})
        neg_img_text = node_helpers.conditioning_set_values(
            negative, {"time_dim_concat": zero_reference_latent(ref_latent)})
        return io.NodeOutput(pos, neg_text, neg_img_text, {"samples": latent}, layout)


class Mv2IDRDRoPE(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="Mv2IDRDRoPE",
            display_name="Mv2ID RD-RoPE",
            category=CATEGORY,
            description=(
                "Reference-decoupled RoPE: all reference frames share one temporal position (last video frame "
                "+ offset) and reference i is shifted spatially by k*(H, W) token-grid sizes, so the model "
                "combines the views instead of pasting the one whose pose matches. Returns a patched clone; "
                "video tokens keep their positions. 'vanilla' reproduces Phantom's layout for A/B tests."),
            inputs=[
                io.Model.Input("model", tooltip="A Wan 2.1 model (T2V 1.3B or 14B) from Load Diffusion Model."),
                io.Combo.Input("mode", options=list(core_rdrope.MODES), default="rd", tooltip=(
                    "rd: the paper's reference-decoupled positions. vanilla: references at consecutive "
                    "temporal positions after the video (Phantom), for comparison.")),
                io.Float.Input("offset", default=1.0, min=0.0, max=64.0, step=0.5, tooltip=(
                    "Temporal distance of the shared reference position from the last video frame "
                    "(not published in the paper; 1 = where the first vanilla reference sits).")),
                io.Int.Input("first_index", default=1, min=0, max=16, tooltip=(
                    "k of the first reference in its spatial shift k*(H, W). 1 (default) puts every "
                    "reference off the video's grid; 0 puts the first reference on it.")),
                ReferenceLayout.Input("layout", optional=True, tooltip=(
                    "Optional: the layout from Mv2ID Reference Conditioning; the patch then checks at run "
                    "time that the sampler really gets that many references.")),
                io.Combo.Input("lora_name", options=["none"] + folder_paths.get_filename_list("loras"),
                               default="none", optional=True, tooltip=(
                    "Optional: the Mv2ID LoRA you load with LoraLoaderModelOnly. When that file records the "
                    "RD-RoPE settings it was trained with (mv2id-train writes them), those settings are used "
                    "and mode/offset/first_index above are ignored, so positions match training. A file "
                    "without them leaves the settings above in force.")),
            ],
            outputs=[io.Model.Output(tooltip="Patched clone; the input MODEL is unchanged.")],
        )

    @classmethod
    def execute(cls, model, mode, offset, first_index, layout=None, lora_name="none") -> io.NodeOutput:
        config = core_rdrope.RDRoPEConfig(mode=mode, offset=float(offset), first_index=int(first_index))
        if lora_name and lora_name != "none":
            config = _trained_rdrope(lora_name) or config
        expected = int(layout["num_refs"]) if layout else None
        return io.NodeOutput(patch_rdrope(model, config, expected_refs=expected))


def _trained_rdrope(lora_name: str):
    """The RD-RoPE settings recorded in a LoRA's safetensors metadata (None when it has none)."""
    import logging
    from safetensors import safe_open
    path = folder_paths.get_full_path_or_raise("loras", lora_name)
    with safe_open(path, "pt") as f:
        config = core_rdrope.config_from_metadata(f.metadata())
    if config is None:
        logging.warning("Mv2ID RD-RoPE: %s records no RD-RoPE settings; using the node's mode/offset/first_index",
                        lora_name)
    return config


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
    g = _Guider(model)
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


NODES = [Mv2IDReferenceConditioning, Mv2IDRDRoPE, Mv2IDGuider, Mv2IDSampler]
