"""Mv2ID RD-RoPE: reference-decoupled positions as a patch on a clone of the MODEL."""
from __future__ import annotations

import logging

import folder_paths
from comfy_api.latest import io

from mv2id_core import rdrope as core_rdrope
from mv2id_core.comfyui.rdrope_patch import patch_rdrope
from mv2id_core.errors import InputError
from .sockets import ReferenceLayout
from .utils import MODEL_TOOLTIP, Mv2IDNode, check_option, log_inert

log = logging.getLogger("Mv2ID")
CATEGORY = "Mv2ID"
# the node's modes: "auto" (the default) decides between the library's MODES
MODES = ("auto", *core_rdrope.MODES)


class Mv2IDRDRoPE(Mv2IDNode):
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
                "video tokens keep their positions. Only weights trained with these positions (an Mv2ID LoRA) "
                "can use them: mode auto turns them on only for such a LoRA and otherwise keeps Phantom's "
                "layout ('vanilla'), which Phantom-Wan was trained with."),
            inputs=[
                io.Model.Input("model", tooltip=MODEL_TOOLTIP),
                io.Combo.Input("mode", options=list(MODES), default=MODES[0], tooltip=(
                    "auto (default): rd when the LoRA named in lora_name records the Mv2ID RD-RoPE settings it "
                    "was trained with (mv2id-train writes them), otherwise vanilla, the positions Phantom-Wan was "
                    "trained with. rd: the paper's reference-decoupled positions; only weights trained with rd "
                    "(an Mv2ID LoRA) can use them; Phantom-Wan was trained with vanilla. vanilla: references at "
                    "consecutive temporal positions after the video (Phantom), i.e. no change to the model. "
                    "Settings recorded in the LoRA win over the widgets, so positions match training.")),
                io.Float.Input("offset", default=core_rdrope.RDRoPEConfig.offset, min=core_rdrope.OFFSET_RANGE[0],
                               max=core_rdrope.OFFSET_RANGE[1], step=0.5, tooltip=(
                    "rd only: temporal distance of the shared reference position from the last video frame "
                    "(not published in the paper; 1 = where the first vanilla reference sits).")),
                io.Int.Input("first_index", default=core_rdrope.RDRoPEConfig.first_index,
                             min=core_rdrope.FIRST_INDEX_RANGE[0], max=core_rdrope.FIRST_INDEX_RANGE[1], tooltip=(
                    "rd only: k of the first reference in its spatial shift k*(H, W). 1 (default) puts every "
                    "reference off the video's grid; 0 puts the first reference on it.")),
                ReferenceLayout.Input("layout", optional=True, tooltip=(
                    "Optional: the layout from Mv2ID Reference Conditioning; the patch then checks at run "
                    "time that the sampler really gets that many references.")),
                io.Combo.Input("lora_name", options=["none"] + folder_paths.get_filename_list("loras"),
                               default="none", optional=True, tooltip=(
                    "Optional: the Mv2ID LoRA you load with LoraLoaderModelOnly. When that file records the "
                    "RD-RoPE settings it was trained with (mv2id-train writes them), those settings are used "
                    "and mode/offset/first_index above are ignored, so positions match training; mode auto "
                    "picks rd only then. A file without them leaves the settings above in force.")),
            ],
            outputs=[io.Model.Output(tooltip="Patched clone; the input MODEL is unchanged.")],
            hidden=[io.Hidden.unique_id],       # to show inert inputs on the node
        )

    @classmethod
    def execute(cls, model, mode, offset, first_index, layout=None, lora_name="none") -> io.NodeOutput:
        check_option(mode, MODES, "mode")
        check_option(lora_name, ["none"] + folder_paths.get_filename_list("loras"), "lora_name")
        recorded = _trained_rdrope(lora_name) if lora_name and lora_name != "none" else None
        config = choose_config(mode, offset, first_index, recorded, lora_name, cls)
        expected = int(layout["num_refs"]) if layout else None
        return io.NodeOutput(patch_rdrope(model, config, expected_refs=expected))


def choose_config(mode: str, offset: float, first_index: int, recorded, lora_name: str,
                  node_cls=None) -> core_rdrope.RDRoPEConfig:
    """The RD-RoPE settings to patch with, logged in one line that says which and why (and one line for the
    node's settings that then have no effect).

    recorded: the settings the LoRA `lora_name` records (None when it records none or none is named).
    node_cls: the running node's class (to show the inert settings on the node).
    """
    inert = {}
    if recorded is not None:
        config, why = recorded, f"recorded in the LoRA {lora_name} (the settings it was trained with)"
        inert = {n: f"no effect: the settings recorded in the LoRA {lora_name} are used"
                 for n in ("mode", "offset", "first_index")}
    elif mode == "auto":
        config = core_rdrope.RDRoPEConfig(mode="vanilla")
        why = ("mode auto and " + (f"the LoRA {lora_name} records no Mv2ID RD-RoPE settings" if lora_name
                                    and lora_name != "none" else "no Mv2ID LoRA named in lora_name")
               + ": Phantom's positions, which Phantom-Wan was trained with")
    else:
        try:
            config = core_rdrope.RDRoPEConfig(mode=mode, offset=float(offset), first_index=int(first_index))
        except ValueError as e:
            raise InputError(f"Mv2ID RD-RoPE: {e}.") from None
        why = f"mode {mode} chosen on the node"
        if mode == "rd":
            why += " (helps only weights trained with rd, e.g. an Mv2ID LoRA)"
    for name in config.unused:
        inert.setdefault(name, f"no effect: {config.mode} positions do not use it")
    detail = f", offset {config.offset:g}, first_index {config.first_index}" if config.mode == "rd" else ""
    log.info("[Mv2ID] RD-RoPE: %s positions%s: %s", config.mode, detail, why)
    log_inert("RD-RoPE", inert, node_cls)
    return config


def _trained_rdrope(lora_name: str):
    """The RD-RoPE settings recorded in a LoRA's safetensors metadata (None when it has none)."""
    from safetensors import safe_open
    path = folder_paths.get_full_path_or_raise("loras", lora_name)
    try:
        with safe_open(path, "pt") as f:
            metadata = f.metadata()
    except Exception as e:   # safetensors raises its own SafetensorError (and OSError) for broken files
        raise InputError(
            f"Mv2ID RD-RoPE cannot read the LoRA '{lora_name}' ({path}): {type(e).__name__}: {e}. The file is not a "
            f"valid .safetensors file (empty, cut short by an interrupted download or copy, or another format): "
            f"download or copy it again, or set lora_name to none.") from None
    try:
        return core_rdrope.config_from_metadata(metadata)
    except ValueError as e:
        raise InputError(
            f"Mv2ID RD-RoPE: the LoRA '{lora_name}' records RD-RoPE settings this pack cannot use: {e}. A record "
            f"is mode ({' or '.join(core_rdrope.MODES)}) and, for rd, offset and first_index. Allowed: "
            f"mode {' or '.join(core_rdrope.MODES)}, offset {core_rdrope.OFFSET_RANGE[0]:g} to "
            f"{core_rdrope.OFFSET_RANGE[1]:g}, first_index {core_rdrope.FIRST_INDEX_RANGE[0]} to "
            f"{core_rdrope.FIRST_INDEX_RANGE[1]}. Re-save the file with mv2id-train (it writes the whole record), "
            f"or set lora_name to none and choose the settings on the node.") from None


NODES = [Mv2IDRDRoPE]
