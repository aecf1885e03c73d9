"""ComfyUI workflows as data: the UI format the page saves, the API format /prompt takes, and the
node input specs /object_info gives. Nothing here imports ComfyUI or talks to a server.
"""
from __future__ import annotations

import copy

from make_tiny_models import PRESETS

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
SEED_NAMES = {"seed", "noise_seed"}


def _input_specs(info: dict):
    """(name, type, options) for every input of a node class, in the frontend's order."""
    for section in ("required", "optional"):
        for name, spec in (info.get("input", {}).get(section, {}) or {}).items():
            typ, opts = spec[0], (spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {})
            yield name, typ, opts


def _is_widget(typ, opts) -> bool:
    if isinstance(typ, list):
        return True
    return typ in WIDGET_TYPES and not opts.get("forceInput", False)


def ui_to_api(workflow: dict, object_info: dict) -> dict:
    """Convert a UI-format workflow (what the ComfyUI page saves) into an API prompt.

    Notes and other frontend-only nodes (no entry in object_info) are dropped; muted nodes
    (mode 2) are dropped; bypassed nodes (mode 4) are refused because their pass-through
    wiring is a frontend concept.
    """
    links = {l[0]: l for l in workflow.get("links", [])}
    prompt = {}
    for node in workflow["nodes"]:
        ctype = node["type"]
        if ctype not in object_info:
            if ctype in ("Note", "MarkdownNote", "Reroute", "PrimitiveNode"):
                continue
            raise KeyError(f"node {node['id']} has type {ctype!r}, which this server does not know "
                           f"(a missing custom node pack?)")
        if node.get("mode", 0) == 2:
            continue
        if node.get("mode", 0) == 4:
            raise ValueError(f"node {node['id']} ({ctype}) is bypassed; unbypass it or remove it")
        inputs = {}
        linked = {}
        for inp in node.get("inputs", []) or []:
            if inp.get("link") is not None:
                link = links[inp["link"]]
                linked[inp["name"]] = [str(link[1]), link[2]]
        wvals = list(node.get("widgets_values", []) or [])
        if isinstance(node.get("widgets_values"), dict):   # some nodes save a name->value dict
            wvals = None
        pos = 0
        for name, typ, opts in _input_specs(object_info[ctype]):
            if name in linked:
                inputs[name] = linked[name]
                if _is_widget(typ, opts) and wvals is not None:
                    pos += 1 + _extra_widget_slots(name, typ, opts)
                continue
            if not _is_widget(typ, opts):
                continue
            if wvals is None:
                if name in node["widgets_values"]:
                    inputs[name] = node["widgets_values"][name]
                continue
            if pos < len(wvals):
                inputs[name] = wvals[pos]
            pos += 1 + _extra_widget_slots(name, typ, opts)
        prompt[str(node["id"])] = {"class_type": ctype, "inputs": inputs, "_meta": {"title": node.get("title", ctype)}}
    return prompt


def _extra_widget_slots(name, typ, opts) -> int:
    """Values the frontend stores after a widget: 'control after generate', upload buttons."""
    extra = 0
    if typ == "INT" and (opts.get("control_after_generate") or name in SEED_NAMES):
        extra += 1
    if opts.get("image_upload") or opts.get("video_upload") or opts.get("audio_upload"):
        extra += 1
    return extra


# ----------------------------------------------------------------------------- tiny-model rewriting
TINY_UNET = PRESETS["tiny"]["unet_name"]
TINY_VAE = PRESETS["tiny"]["vae_name"]
TINY_WAN22 = PRESETS["tiny"]["wan22_name"]
TEXT_ENCODE_TYPES = {"CLIPTextEncode"}
TEXT_LOADER_TYPES = {"CLIPLoader", "DualCLIPLoader"}


def rewrite_for_tiny_models(prompt: dict, text_len: int = 16, seed: int = 0) -> dict:
    """Swap real model files for the tiny test models, everything else unchanged.

    umT5-XXL cannot be shrunk, so every text-encode node becomes the test-only
    Mv2IDTestConditioning node (random embeddings of the right shape, seeded by the prompt
    text so positive and negative differ) and the text-encoder loader is removed.
    """
    p = copy.deepcopy(prompt)
    for nid in [k for k, v in p.items() if v["class_type"] in TEXT_LOADER_TYPES]:
        del p[nid]
    for nid, node in p.items():
        ct = node["class_type"]
        if ct in TEXT_ENCODE_TYPES:
            text = node["inputs"].get("text", "")
            node["class_type"] = "Mv2IDTestConditioning"
            node["inputs"] = {"seed": seed + (sum(map(ord, str(text))) % 100_000), "tokens": text_len}
        elif ct == "UNETLoader":
            node["inputs"]["unet_name"] = TINY_UNET
            node["inputs"]["weight_dtype"] = "default"
        elif ct == "VAELoader":
            node["inputs"]["vae_name"] = TINY_VAE
    return p


