"""Helpers the pack's nodes share: checks of what `execute` relies on (ComfyUI does not check
tensor shapes or values, NaN or infinity in FLOAT inputs, nor V3 combo values sent through the API),
with errors that name the input and the fix; the nodes' base class; and the texts several nodes show."""
from __future__ import annotations

import functools
import logging
import math
import os

import folder_paths
import torch
from comfy_api.latest import io

from mv2id_core.errors import InputError, check_choice

log = logging.getLogger("Mv2ID")

# every node a MODEL enters (RD-RoPE, Guider, Sampler) says the same about which models work
MODEL_TOOLTIP = (
    "A Wan 2.1-class model from Load Diffusion Model: Phantom-Wan 1.3B or 14B (trained with reference "
    "frames; what the pack is for), or Wan 2.1 T2V. Wan 2.2 A14B (high or low noise) loads as the same "
    "class and is accepted, but it was never trained with references: use it without references, e.g. as "
    "the first, high-noise stage before Phantom. The 48-channel Wan 2.2 5B is refused.")


def register_model_folder(name: str, extensions: set[str]) -> None:
    """Make <models>/<name> a ComfyUI model folder for these file extensions; a folder another pack or an
    extra_model_paths.yaml already declared keeps its paths and gains the default one."""
    default = os.path.join(folder_paths.models_dir, name)
    if name not in folder_paths.folder_names_and_paths:
        folder_paths.folder_names_and_paths[name] = ([default], set(extensions))
    elif default not in folder_paths.get_folder_paths(name):
        folder_paths.add_model_folder_path(name, default)


def check_option(value, options, name: str):
    """A combo value `execute` relies on: ComfyUI does not check V3 combos sent through its API (and core
    functions silently fall back to a default), so a bad one is an InputError listing the valid values."""
    try:
        return check_choice(value, options, name)
    except InputError as e:
        raise InputError(f"{e} A saved workflow or API prompt may name a value this ComfyUI does not have: "
                         f"pick one of them.") from None


def check_image_batch(value, name: str) -> torch.Tensor:
    """An IMAGE batch [B, H, W, C] with B >= 1, C in (1, 3, 4) and finite pixels, else InputError."""
    if not isinstance(value, torch.Tensor) or value.ndim != 4:
        raise InputError(f"{name} must be an IMAGE batch [B, H, W, C], got {type(value).__name__}"
                         f"{list(value.shape) if hasattr(value, 'shape') else ''}: connect an IMAGE output "
                         f"(Load Image, VAE Decode, an image batch node).")
    if value.shape[0] == 0 or min(value.shape[1:3]) == 0:
        raise InputError(f"{name} is an empty IMAGE batch {list(value.shape)}: connect at least one image.")
    if value.shape[-1] not in (1, 3, 4):
        raise InputError(f"{name} has {value.shape[-1]} channels per pixel; an IMAGE has 3 (RGB), or 1 / 4.")
    bad = ~torch.isfinite(value)
    if bad.any():
        images = sorted({int(i) for i in bad.flatten(1).any(1).nonzero().flatten()})
        raise InputError(f"{name}: image(s) {images[:10]} (0-based) contain NaN or infinite pixels, which would "
                         f"turn the whole result into NaN (a black video); fix the node that made them.")
    return value


def log_inert(node: str, inert: dict[str, str], node_cls=None) -> list[str]:
    """Say which inputs a node's settings make inert ({input: why}, from the library's rule): one log line
    each (inputs with the same reason share one), and, for a node that declares the hidden unique_id
    (pass its class), the same lines as text on the node in the ComfyUI page. Returns the lines."""
    by_reason: dict[str, list[str]] = {}
    for name, why in inert.items():
        by_reason.setdefault(why, []).append(name)
    lines = [f"{', '.join(names)}: {why}" for why, names in by_reason.items()]
    for line in lines:
        log.info("[Mv2ID] %s: %s", node, line)
    node_id = getattr(getattr(node_cls, "hidden", None), "unique_id", None)
    if lines and node_id is not None:
        from server import PromptServer
        PromptServer.instance.send_progress_text("\n".join(lines), node_id)
    return lines


# ------------------------------------------------------------------------------------ the nodes' base class
class Mv2IDNode(io.ComfyNode):
    """Base class of every Mv2ID node: before its `execute` runs, every FLOAT input its schema declares
    (optional ones included) is checked to be a finite number. ComfyUI lets NaN through a widget's min/max
    check and does not check values that arrive through links at all; they would end as an all-NaN latent
    (a black video) or an unclear error deep in a sampler. The check is wrapped around `execute` when a
    subclass is defined, so a new node or a new float input cannot be left out."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        execute = cls.__dict__.get("execute")
        if execute is None or getattr(execute, "_mv2id_checked", False):   # ComfyUI's per-run class clones
            return
        inner, owner = execute.__func__, cls

        @functools.wraps(inner)
        def checked(node_cls, *args, **inputs):
            check_float_inputs(owner, inputs)
            return inner(node_cls, *args, **inputs)

        wrapped = classmethod(checked)
        wrapped._mv2id_checked = True
        cls.execute = wrapped


_FLOAT_INPUTS: dict[type, tuple[list, str]] = {}


def float_inputs(node_cls) -> tuple[list, str]:
    """(the FLOAT inputs the node's schema declares, its display name), read once per node class."""
    if node_cls not in _FLOAT_INPUTS:
        schema = node_cls.define_schema()
        _FLOAT_INPUTS[node_cls] = ([i for i in schema.inputs if isinstance(i, io.Float.Input)],
                                   schema.display_name or schema.node_id)
    return _FLOAT_INPUTS[node_cls]


def check_float_inputs(node_cls, values: dict) -> None:
    """InputError naming the first FLOAT input whose value is NaN, infinite or not a number, with the fix."""
    specs, node_name = float_inputs(node_cls)
    for spec in specs:
        if spec.id not in values:
            continue
        v = values[spec.id]
        try:
            ok = not isinstance(v, bool) and math.isfinite(float(v))
        except (TypeError, ValueError, OverflowError):
            ok = False
        if ok:
            continue
        fix = f"a number from {spec.min:g} to {spec.max:g}" if None not in (spec.min, spec.max) else "a number"
        if spec.default is not None:
            fix += f" (default {spec.default:g})"
        raise InputError(
            f"{node_name}: {spec.id} is {v!r}, not a finite number: set {spec.id} to {fix}. ComfyUI passes NaN "
            f"and infinity on to nodes (its range check does not catch NaN, and values from links are not "
            f"checked); they would turn the video into NaN or stop the run later with an unclear error.")
