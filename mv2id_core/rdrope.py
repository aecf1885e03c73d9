"""RD-RoPE: reference-decoupled 3D RoPE position ids for video + reference tokens.

Wan 2.1 gives every latent token a (t, h, w) position id that a 3D RoPE turns into rotary
frequencies. Reference frames joined after the video on the time axis would naively get
the next temporal indices (Phantom's "vanilla" layout), which invites the model to paste
the reference whose pose matches. RD-RoPE instead puts all references at ONE temporal
index (last video frame + `offset`) and separates them spatially: reference i is shifted by
(k*H, k*W) in (height, width) with k = first_index + i, H x W being the latent token grid.

Position ids here are exactly ComfyUI's (comfy/ldm/wan/model.py `rope_encode`), including
its global `rope_options` (scale_t/x/y, shift_t/x/y): video rows are produced with the same
linspace arithmetic so they stay bit-identical to the unpatched model; reference rows get
the same affine scale and shift, so RD-RoPE composes with other rope_options patches.

Token order matches the model's flattening: (t, h, w) row-major, video frames first.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, asdict

import torch

from .errors import check_choice

MODES = ("rd", "vanilla")
# the allowed settings, written once: the node's widgets, the trainer's arguments and LoRA metadata use these
OFFSET_RANGE = (0.0, 64.0)
FIRST_INDEX_RANGE = (0, 16)


def check_offset(offset) -> float:
    """`offset` when it is an allowed RD-RoPE offset (a finite number in OFFSET_RANGE), else ValueError."""
    lo, hi = OFFSET_RANGE
    if not (isinstance(offset, (int, float)) and not isinstance(offset, bool) and math.isfinite(offset)
            and lo <= offset <= hi):
        raise ValueError(f"RD-RoPE offset must be a number from {lo:g} to {hi:g}, got {offset!r}")
    return float(offset)


def check_first_index(first_index) -> int:
    """`first_index` when it is an allowed RD-RoPE first index (a whole number in FIRST_INDEX_RANGE), else
    ValueError."""
    lo, hi = FIRST_INDEX_RANGE
    if not (isinstance(first_index, int) and not isinstance(first_index, bool) and lo <= first_index <= hi):
        raise ValueError(f"RD-RoPE first_index must be a whole number from {lo} to {hi}, got {first_index!r}")
    return first_index


@dataclass(frozen=True)
class RDRoPEConfig:
    """mode: "rd" (the paper) or "vanilla" (Phantom: consecutive temporal indices).
    offset: temporal distance of the shared reference index from the last video frame
        (unpublished in the paper; default 1, i.e. where the first vanilla reference sits).
    first_index: k of the first reference in the spatial shift k*(H, W) (unpublished;
        default 1, so even the first reference sits off the video's spatial grid, as the
        paper's figure suggests; 0 puts it on the video grid).
    The defaults here are the only copy: the node's widgets and mv2id-train's arguments read them.
    """
    mode: str = "rd"
    offset: float = 1.0
    first_index: int = 1

    def __post_init__(self):
        check_choice(self.mode, MODES, "RD-RoPE mode")
        check_offset(self.offset)
        check_first_index(self.first_index)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def unused(self) -> tuple[str, ...]:
        """The settings these positions do not read: vanilla uses neither offset nor first_index."""
        return () if self.mode == "rd" else ("offset", "first_index")


def _affine(rope_options: dict | None):
    """(scale, shift) per axis (t, h, w) from ComfyUI's transformer_options['rope_options']."""
    ro = rope_options or {}
    scale = (ro.get("scale_t", 1.0), ro.get("scale_y", 1.0), ro.get("scale_x", 1.0))
    shift = (ro.get("shift_t", 0.0), ro.get("shift_y", 0.0), ro.get("shift_x", 0.0))
    return scale, shift, rope_options is not None


def comfy_grid_ids(t_len: int, h_len: int, w_len: int, rope_options: dict | None = None,
                   t_start: float = 0.0, device=None, dtype=None) -> torch.Tensor:
    """ComfyUI's own position ids for a (t_len, h_len, w_len) token grid -> [t_len*h_len*w_len, 3].

    Mirrors WanModel.rope_encode operation for operation so the values are bit-identical.
    """
    steps_t, steps_h, steps_w = t_len, h_len, w_len
    h_start = w_start = 0.0
    tl, hl, wl = t_len, h_len, w_len
    if rope_options is not None:
        tl = (tl - 1.0) * rope_options.get("scale_t", 1.0) + 1.0
        hl = (hl - 1.0) * rope_options.get("scale_y", 1.0) + 1.0
        wl = (wl - 1.0) * rope_options.get("scale_x", 1.0) + 1.0
        t_start += rope_options.get("shift_t", 0.0)
        h_start += rope_options.get("shift_y", 0.0)
        w_start += rope_options.get("shift_x", 0.0)
    ids = torch.zeros((steps_t, steps_h, steps_w, 3), device=device, dtype=dtype)
    ids[:, :, :, 0] = ids[:, :, :, 0] + torch.linspace(t_start, t_start + (tl - 1), steps=steps_t, device=device, dtype=dtype).reshape(-1, 1, 1)
    ids[:, :, :, 1] = ids[:, :, :, 1] + torch.linspace(h_start, h_start + (hl - 1), steps=steps_h, device=device, dtype=dtype).reshape(1, -1, 1)
    ids[:, :, :, 2] = ids[:, :, :, 2] + torch.linspace(w_start, w_start + (wl - 1), steps=steps_w, device=device, dtype=dtype).reshape(1, 1, -1)
    return ids.reshape(-1, 3)


def reference_ids(num_refs: int, video_frames: int, h_len: int, w_len: int, config: RDRoPEConfig,
                  rope_options: dict | None = None, device=None, dtype=None) -> torch.Tensor:
    """Position ids of the reference tokens -> [num_refs*h_len*w_len, 3].

    vanilla: reference i at t = video_frames + i, on the video's (h, w) grid.
    rd:      every reference at t = (video_frames - 1) + offset; reference i shifted by
             k*(h_len, w_len) with k = first_index + i.
    Both then get rope_options' scale and shift, like the video tokens.
    """
    scale, shift, _ = _affine(rope_options)
    i = torch.arange(num_refs, device=device, dtype=torch.float64)
    if config.mode == "vanilla":
        t = video_frames + i
        k = torch.zeros_like(i)
    else:
        t = torch.full_like(i, (video_frames - 1) + float(config.offset))
        k = config.first_index + i
    hh = torch.arange(h_len, device=device, dtype=torch.float64)
    ww = torch.arange(w_len, device=device, dtype=torch.float64)
    t_ids = t.view(-1, 1, 1).expand(num_refs, h_len, w_len)
    h_ids = (hh.view(1, -1, 1) + (k * h_len).view(-1, 1, 1)).expand(num_refs, h_len, w_len)
    w_ids = (ww.view(1, 1, -1) + (k * w_len).view(-1, 1, 1)).expand(num_refs, h_len, w_len)
    ids = torch.stack([t_ids * scale[0] + shift[0], h_ids * scale[1] + shift[1], w_ids * scale[2] + shift[2]], dim=-1)
    return ids.reshape(-1, 3).to(dtype=dtype if dtype is not None else torch.float32)


def position_ids(video_frames: int, num_refs: int, h_len: int, w_len: int, config: RDRoPEConfig,
                 rope_options: dict | None = None, device=None, dtype=None) -> torch.Tensor:
    """Ids of all tokens, video then references -> [(video_frames+num_refs)*h_len*w_len, 3].

    Video rows are exactly ComfyUI's ids for the full sequence (so they never move);
    in vanilla mode the reference rows are ComfyUI's too, i.e. the patch is a no-op.
    """
    ids = comfy_grid_ids(video_frames + num_refs, h_len, w_len, rope_options, device=device, dtype=dtype)
    if num_refs == 0 or config.mode == "vanilla":
        return ids
    n_video = video_frames * h_len * w_len
    ids[n_video:] = reference_ids(num_refs, video_frames, h_len, w_len, config, rope_options, device=device, dtype=ids.dtype)
    return ids


# ----------------------------------------------------------------------------- file metadata
METADATA_PREFIX = "mv2id.rdrope."
# the fields of a record (config_to_metadata writes all of them)
RECORD_FIELDS = ("mode", "offset", "first_index")


def config_to_metadata(config: RDRoPEConfig) -> dict:
    """safetensors metadata (str -> str) recording the RD-RoPE settings a model was trained with."""
    return {METADATA_PREFIX + "mode": config.mode, METADATA_PREFIX + "offset": repr(float(config.offset)),
            METADATA_PREFIX + "first_index": str(int(config.first_index))}


def config_from_metadata(metadata: dict | None) -> RDRoPEConfig | None:
    """The RDRoPEConfig recorded by config_to_metadata, or None when the file carries no mv2id.rdrope.* field.

    A record must be complete: mode, and for mode rd also offset and first_index (vanilla positions use
    neither). A partial or unknown record raises ValueError naming what is missing or unknown: filling a
    gap with a default would report positions as "recorded in the LoRA" that the weights were not trained
    with."""
    record = {k[len(METADATA_PREFIX):]: v for k, v in (metadata or {}).items() if k.startswith(METADATA_PREFIX)}
    if not record:
        return None
    fields = ", ".join(f"{k}={v!r}" for k, v in sorted(record.items()))
    unknown = sorted(set(record) - set(RECORD_FIELDS))
    if unknown:
        raise ValueError(f"bad RD-RoPE metadata ({fields}): unknown field(s) {', '.join(unknown)} (a record has "
                         f"{', '.join(RECORD_FIELDS)}; written by a newer pack or by hand?)")
    if "mode" in record and record["mode"] not in MODES:
        raise ValueError(f"bad RD-RoPE metadata ({fields}): RD-RoPE mode must be one of {', '.join(MODES)}, "
                         f"got {record['mode']!r}")
    needed = ("mode",) if record.get("mode") == "vanilla" else RECORD_FIELDS
    missing = [k for k in needed if k not in record]
    if missing:
        why = (f"mode {record['mode']} needs {' and '.join(needed[1:])}" if "mode" in record
               else "without a mode the positions it was trained with are unknown")
        raise ValueError(f"incomplete RD-RoPE metadata ({fields}): {why}; missing: {', '.join(missing)}")
    try:
        if record["mode"] == "vanilla":
            return RDRoPEConfig(mode="vanilla")
        first = float(record["first_index"])
        if not first.is_integer():
            raise ValueError(f"RD-RoPE first_index must be a whole number, got {first!r}")
        return RDRoPEConfig(mode=record["mode"], offset=float(record["offset"]), first_index=int(first))
    except (TypeError, ValueError, OverflowError) as e:
        raise ValueError(f"bad RD-RoPE metadata ({fields}): {e}") from None
