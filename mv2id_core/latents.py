"""Wan 2.1 video latent geometry, written once.

The Wan 2.1 VAE turns RGB frames into 16-channel latents, 8x smaller in height and width and 4x
shorter in time with a causal first frame (so a video has 4n+1 frames and (F - 1) / 4 + 1 latent
frames). The DiT cuts latents into (1, 2, 2) patches, so width and height must be multiples of
8 x 2 = 16 pixels. ComfyUI nodes ask the loaded VAE for its numbers (mv2id_core.comfyui.wan) and
pass them in; these constants are Wan 2.1's, used where no VAE is at hand.
"""
from __future__ import annotations

from .errors import InputError

LATENT_CHANNELS = 16
SPATIAL_COMPRESSION = 8
TEMPORAL_COMPRESSION = 4
PATCH_SIZE = (1, 2, 2)
PIXEL_MULTIPLE = SPATIAL_COMPRESSION * PATCH_SIZE[1]


def check_length(length: int, temporal: int = TEMPORAL_COMPRESSION) -> None:
    """Frame counts must be temporal*n + 1 (4n+1 for Wan 2.1)."""
    if length < 1 or (length - 1) % temporal != 0:
        lo = max(1, ((length - 1) // temporal) * temporal + 1)
        raise InputError(f"length {length} is not of the form {temporal}n+1 (Wan 2.1 video frames); "
                         f"use {lo} or {lo + temporal}.")


def check_size(width: int, height: int, multiple: int = PIXEL_MULTIPLE) -> None:
    """Width and height must be multiples of `multiple` pixels (16 for Wan 2.1), else the model
    silently crops the video to the next smaller multiple."""
    bad = [f"{name} {v}" for name, v in (("width", width), ("height", height)) if v < multiple or v % multiple]
    if bad:
        fix = ", ".join(f"{name} {max(multiple, v // multiple * multiple)} or {max(multiple, v // multiple * multiple) + multiple}"
                        for name, v in (("width", width), ("height", height)) if v < multiple or v % multiple)
        raise InputError(f"{' and '.join(bad)} not a multiple of {multiple} pixels (Wan 2.1 works in "
                         f"{multiple}-pixel patches); use {fix}.")


def latent_frames(length: int, temporal: int = TEMPORAL_COMPRESSION) -> int:
    """Latent frames of a video of `length` frames."""
    return (length - 1) // temporal + 1


def latent_shape(batch: int, length: int, height: int, width: int, channels: int = LATENT_CHANNELS,
                 spatial: int = SPATIAL_COMPRESSION, temporal: int = TEMPORAL_COMPRESSION) -> tuple[int, ...]:
    """[B, C, F, h, w] of the latent of `batch` videos of `length` frames at width x height."""
    return (batch, channels, latent_frames(length, temporal), height // spatial, width // spatial)


def token_grid(t: int, h: int, w: int, patch_size=PATCH_SIZE) -> tuple[int, int, int]:
    """Latent (frames, height, width) -> token grid size, rounding like ComfyUI (pad to patch)."""
    return tuple((n + p // 2) // p for n, p in zip((t, h, w), patch_size))
