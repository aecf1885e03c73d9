"""Helpers the pack's nodes share: checks of what `execute` relies on (ComfyUI does not check
tensor shapes or values), with errors that name the input and the fix."""
from __future__ import annotations

import torch

from ..mv2id_core.errors import InputError


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


def check_choice(value, options, name: str):
    """A combo value the node relies on (ComfyUI does not check V3 combo options through the API), else
    InputError listing the valid values."""
    if value not in tuple(options):
        raise InputError(f"{name} must be one of {', '.join(map(str, options))}, got {value!r}.")
    return value
