"""Helpers the pack's nodes share: checks of what `execute` relies on (ComfyUI does not check
tensor shapes or values, nor V3 combo values sent through the API), with errors that name the
input and the fix; and the texts several nodes show."""
from __future__ import annotations

import os

import folder_paths
import torch

from mv2id_core.errors import InputError, check_choice

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
