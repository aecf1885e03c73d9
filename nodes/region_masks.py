"""Mv2ID Region Mask: the paper's random blocky masking of reference images."""
from __future__ import annotations

import logging

from comfy_api.latest import io

from mv2id_core import region_masks as core_masks
from .utils import Mv2IDNode, check_image_batch, log_inert

CATEGORY = "Mv2ID/faces"
log = logging.getLogger("Mv2ID")


class Mv2IDRegionMask(Mv2IDNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="Mv2IDRegionMask",
            display_name="Mv2ID Region Mask",
            category=CATEGORY,
            description=(
                "Hides random square blocks covering `ratio` of every reference image's own pixels (the paper masks "
                "60% of each reference during training, so no single view can be copied and the model must combine "
                "views). Blocks are counted on the image as it comes in, before Mv2ID Reference Conditioning fits "
                "it to the video size: the white padding added there is never part of the masked share. "
                "mv2id-cache masks training references with this same function in this same order (mask, then "
                "fit), so Region Mask -> Reference Conditioning reproduces a training sample. Use it to preview "
                "the training masks or to test how a model copes with partial references; inference normally "
                "uses unmasked references."),
            inputs=[
                io.Image.Input("images", tooltip="Reference images (IMAGE batch), e.g. from Mv2ID Face Views."),
                io.Float.Input("ratio", default=0.6, min=0.0, max=1.0, step=0.01, tooltip=(
                    "Fraction of each image's own pixels hidden (exact in blocks; edge blocks may be partial). "
                    "The paper uses 0.6.")),
                io.Int.Input("block_size", default=32, min=1, max=1024, tooltip=(
                    "Side of the square blocks in the image's own pixels (at the video size, 32 px = 4 latent "
                    "pixels of the Wan VAE; a larger image is scaled down with its blocks).")),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                             tooltip="Seed of the random blocks; the same seed gives the same masks."),
                io.Float.Input("fill", default=1.0, min=0.0, max=1.0, step=0.01, tooltip=(
                    "Value written into hidden pixels (1.0 = white, like the white reference background; 0.5 = "
                    "grey).")),
                io.Boolean.Input("complementary", default=False, tooltip=(
                    "Keep every block visible in at least one view, so together the views show the whole "
                    "face. Needs ratio <= (views - 1) / views.")),
            ],
            outputs=[
                io.Image.Output("masked_images", display_name="masked_images", tooltip="The images with the hidden blocks filled."),
                io.Mask.Output("masks", display_name="masks", tooltip="The masks, 1 = hidden (MASK batch, one per image)."),
            ],
            hidden=[io.Hidden.unique_id],       # to show inert settings on the node
        )

    @classmethod
    def execute(cls, images, ratio, block_size, seed, fill, complementary) -> io.NodeOutput:
        check_image_batch(images, "images")
        masked, masks = core_masks.mask_references(images, float(ratio), int(block_size), int(seed), float(fill),
                                              bool(complementary))
        h, w = images.shape[1:3]
        log_inert("Region Mask", core_masks.inert_inputs(h, w, float(ratio), int(block_size)), cls)
        note = core_masks.share_note(h, w, float(ratio), int(block_size))
        if note:
            log.info("[Mv2ID] Region Mask: %s", note)
        return io.NodeOutput(masked, masks.float())


NODES = [Mv2IDRegionMask]
