"""Mv2ID Reference Conditioning: multi-view references joined to the video latent on the time axis."""
from __future__ import annotations

import logging

import torch

import comfy.model_management
import node_helpers
import nodes as comfy_nodes
from comfy_api.latest import io

from mv2id_core import latents
from mv2id_core import references as core_refs
from mv2id_core.comfyui.wan import vae_geometry, zero_reference_latent
from .sockets import ReferenceLayout
from .utils import Mv2IDNode, check_image_batch, check_option

log = logging.getLogger("Mv2ID")
CATEGORY = "Mv2ID"
# Phantom-Wan's README: "The number of reference images should be within 4"
PHANTOM_MAX_REFERENCES = 4


class Mv2IDReferenceConditioning(Mv2IDNode):
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
                    "Face references, 1 to 4 views as an IMAGE batch (Phantom-Wan was trained with at most 4; "
                    "the paper uses 3); batch order is view order. Use 'Mv2ID Face Views' to make clean "
                    "head-and-shoulder crops on white.")),
                io.Int.Input("width", default=832, min=16, max=comfy_nodes.MAX_RESOLUTION, step=16,
                             tooltip="Video width in pixels (multiple of 16). Phantom-Wan is trained at 832x480 (480p; "
                                     "landscape recommended)."),
                io.Int.Input("height", default=480, min=16, max=comfy_nodes.MAX_RESOLUTION, step=16,
                             tooltip="Video height in pixels (multiple of 16)."),
                io.Int.Input("length", default=81, min=1, max=comfy_nodes.MAX_RESOLUTION, step=4,
                             tooltip="Number of video frames; must be 4n+1. Phantom-Wan 1.3B: 81 (5 s at 16 fps); "
                                     "Phantom-Wan 14B was trained on 24 fps (its README uses 121)."),
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
                                       tooltip="How many references were packed, for the RD-RoPE patch's run-time "
                                               "check that the sampler gets these references."),
            ],
        )

    @classmethod
    def execute(cls, positive, negative, vae, reference_images, width, height, length, batch_size, fit) -> io.NodeOutput:
        check_image_batch(reference_images, "reference_images")
        check_option(fit, core_refs.FIT_MODES, "fit")
        channels, spatial, temporal = vae_geometry(vae)
        latents.check_size(width, height, spatial * latents.PATCH_SIZE[1])
        latents.check_length(length, temporal)
        if reference_images.shape[0] > PHANTOM_MAX_REFERENCES:
            log.warning("[Mv2ID] Reference Conditioning: %d reference images; Phantom-Wan was trained with at most %d "
                        "(its README: 'within 4'); more cost memory and time", reference_images.shape[0],
                        PHANTOM_MAX_REFERENCES)
        refs = core_refs.fit_references(reference_images, width, height, fit)
        ref_latent = core_refs.encode_references(refs, lambda img: vae.encode(img))
        latent = torch.zeros(latents.latent_shape(batch_size, length, height, width, channels, spatial, temporal),
                             device=comfy.model_management.intermediate_device())
        pos = node_helpers.conditioning_set_values(positive, {"time_dim_concat": ref_latent})
        neg_text = node_helpers.conditioning_set_values(negative, {"time_dim_concat": ref_latent})
        neg_img_text = node_helpers.conditioning_set_values(
            negative, {"time_dim_concat": zero_reference_latent(ref_latent)})
        return io.NodeOutput(pos, neg_text, neg_img_text, {"samples": latent}, {"num_refs": int(refs.shape[0])})


NODES = [Mv2IDReferenceConditioning]
