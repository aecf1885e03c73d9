"""The Wan 2.1 model and VAE as ComfyUI loads them: which models the method accepts, and
reference latents in the model's space."""
from __future__ import annotations

import torch

import comfy.latent_formats
import comfy.model_base

from .. import latents
from ..errors import ModelTypeError


def require_wan21(model) -> None:
    """Raise ModelTypeError unless `model` (a ModelPatcher) holds a Wan 2.1-class (16-channel) model:
    Phantom-Wan, Wan 2.1 T2V, or Wan 2.2 A14B (which ComfyUI loads as the same class). The 48-channel
    Wan 2.2 5B (WAN22) is refused."""
    base = getattr(model, "model", None)
    dm = getattr(base, "diffusion_model", None)
    name = type(base).__name__ if base is not None else type(model).__name__
    if isinstance(base, comfy.model_base.WAN22):
        raise ModelTypeError(
            f"Mv2ID needs a Wan 2.1-class model (Phantom-Wan 1.3B/14B, Wan 2.1 T2V, or Wan 2.2 A14B), but this MODEL "
            f"is {name}: the Wan 2.2 5B (48-channel latent), which has no Phantom weights and a different latent. "
            f"Load Phantom-Wan with 'Load Diffusion Model' (e.g. Phantom-Wan-14B_fp16.safetensors).")
    if not isinstance(base, comfy.model_base.WAN21):
        raise ModelTypeError(
            f"Mv2ID needs a Wan 2.1-class model (Phantom-Wan 1.3B/14B, Wan 2.1 T2V, or Wan 2.2 A14B), but this MODEL "
            f"is {name}. Load Phantom-Wan with 'Load Diffusion Model' (e.g. Phantom-Wan-14B_fp16.safetensors).")
    if base.latent_format.latent_channels != latents.LATENT_CHANNELS or not hasattr(dm, "rope_embedder"):
        raise ModelTypeError(f"Mv2ID needs a Wan 2.1-class model with a 16-channel latent; {name} is not one.")
    require_text_to_video(dm, "this MODEL", "Load Phantom-Wan with 'Load Diffusion Model'.")


def require_text_to_video(dm, what: str, fix: str) -> None:
    """Raise ModelTypeError unless the WanModel `dm` is a text-to-video Wan model: 16 latent channels in and
    out, which leaves room for reference frames joined on the time axis. The one check of a Wan model's
    channels, for a loaded MODEL (require_wan21) and for the trainer's bare WanModel.

    what: how the message names the model (e.g. "this MODEL" or a file); fix: what to do instead."""
    c = latents.LATENT_CHANNELS
    in_dim = getattr(dm, "in_dim", c)
    if in_dim == 48:
        raise ModelTypeError(
            f"Mv2ID needs a Wan 2.1-class text-to-video model (16 latent channels: Phantom-Wan, Wan 2.1 T2V, Wan 2.2 "
            f"A14B T2V), but {what} takes 48 input channels: the Wan 2.2 5B, which has no Phantom weights and another "
            f"latent. {fix}")
    if in_dim != c or getattr(dm, "out_dim", c) != c:
        raise ModelTypeError(
            f"Mv2ID needs a text-to-video Wan model (16 input channels: Phantom-Wan, Wan 2.1 T2V, Wan 2.2 A14B T2V), but "
            f"{what} takes {in_dim} input channels: an image-to-video model (Wan 2.1 I2V / FLF, Wan 2.2 A14B I2V) or "
            f"another variant, which cannot take reference frames. {fix}")


def latent_format():
    """Wan 2.1's latent format (its scaling between VAE space and model space)."""
    return comfy.latent_formats.Wan21()


def zero_reference_latent(reference_latent: torch.Tensor) -> torch.Tensor:
    """Zero references in the model's space: time_dim_concat goes through process_latent_in,
    so 'zero' is stored as process_out(0), as ComfyUI core's Phantom node does."""
    return latent_format().process_out(torch.zeros_like(reference_latent))


def vae_geometry(vae, what: str = "this VAE", fix: str = "Load wan_2.1_vae.safetensors with 'Load VAE'"
                 ) -> tuple[int, int, int]:
    """(latent channels, spatial compression, temporal compression) of a ComfyUI VAE, asked from the VAE
    itself; raises ModelTypeError unless it is a Wan 2.1 video VAE (16 channels, 8x, 4x). The one check of
    a VAE, for the nodes and for mv2id-cache (`what` names the VAE, `fix` says what to do instead)."""
    channels = getattr(vae, "latent_channels", None)
    try:
        spatial = vae.spacial_compression_encode()
        temporal = vae.temporal_compression_decode()
    except AttributeError:
        spatial = temporal = None
    if (channels, spatial, temporal) != (latents.LATENT_CHANNELS, latents.SPATIAL_COMPRESSION,
                                         latents.TEMPORAL_COMPRESSION):
        raise ModelTypeError(
            f"Mv2ID needs the Wan 2.1 VAE (16 latent channels, 8x smaller frames, 4x fewer latent frames), but "
            f"{what} has {channels} channels, {spatial}x / {temporal}x compression. {fix} (the Wan 2.2 VAE belongs "
            f"to the 5B model, which Mv2ID does not support).")
    return channels, spatial, temporal
