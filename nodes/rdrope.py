"""Mv2ID RD-RoPE: reference-decoupled positions as a patch on a clone of the MODEL."""
from __future__ import annotations

import logging

import folder_paths
from comfy_api.latest import io

from ..mv2id_core import rdrope as core_rdrope
from ..mv2id_core.comfyui.rdrope_patch import patch_rdrope
from .sockets import ReferenceLayout

log = logging.getLogger("Mv2ID")
CATEGORY = "Mv2ID"


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
    from safetensors import safe_open
    path = folder_paths.get_full_path_or_raise("loras", lora_name)
    with safe_open(path, "pt") as f:
        config = core_rdrope.config_from_metadata(f.metadata())
    if config is None:
        log.warning("[Mv2ID] RD-RoPE: %s records no RD-RoPE settings; using the node's mode/offset/first_index",
                        lora_name)
    return config


NODES = [Mv2IDRDRoPE]
