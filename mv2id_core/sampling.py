"""Which frames of a video the identity metrics look at, and how frames fall into time segments.

Both the metrics (scoring frames in memory) and video_io (decoding only the sampled frames of a
file) use these, so the rule lives here, below both of them.

- ``sample_frame_indices``: OpenS2V-Eval's sampling (``eval/get_facesim.py``): ``linspace(0, T-1, 32)``
  truncated to int; a video shorter than 32 frames repeats frames.
- ``segment_frames`` / ``segment_of``: consecutive time segments of a fixed number of frames (a second
  at the video's fps, or a context window's length), for identity over time.
"""
from __future__ import annotations

import math

import numpy as np

from .errors import InputError

FACESIM_FRAMES = 32          # OpenS2V-Eval samples 32 frames


def sample_frame_indices(total_frames: int, num_frames: int | None = FACESIM_FRAMES) -> np.ndarray:
    """OpenS2V sampling: ``linspace(0, total-1, num_frames)`` cast to int -> [num_frames] int64.

    num_frames None or 0 -> every frame [total_frames]. Short videos repeat indices (as OpenS2V).
    """
    if total_frames < 1:
        raise InputError("the video has no frames.")
    if not num_frames:
        return np.arange(total_frames, dtype=np.int64)
    if num_frames < 0:
        raise InputError(f"num_frames must be >= 0 (0 = every frame), got {num_frames}.")
    return np.linspace(0, total_frames - 1, int(num_frames)).astype(np.int64)


def segment_bounds(total_frames: int, length: float) -> list[tuple[int, int]]:
    """Consecutive segments of `length` frames (a float: one second at 29.97 fps is 29.97 frames) covering
    frames 0..total_frames-1 -> [(first, end)] with `end` exclusive. A last segment shorter than half a
    segment joins the one before (a Wan video of 4n+1 frames has one frame over whole seconds).
    """
    if not (length > 0 and math.isfinite(length)):
        raise InputError(f"a segment must be a positive, finite number of frames, got {length}.")
    n = max(1, math.ceil(total_frames / length - 1e-9))
    starts = [int(math.floor(i * length + 1e-9)) for i in range(n)] + [int(total_frames)]
    bounds = [(a, b) for a, b in zip(starts[:-1], starts[1:]) if b > a]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < length / 2:
        bounds[-2:] = [(bounds[-2][0], bounds[-1][1])]
    return bounds


def segment_of(frame_indices, bounds: list[tuple[int, int]]) -> np.ndarray:
    """The segment of each frame index: frame_indices [F] -> [F] int64 positions in `bounds`."""
    ends = np.array([b for _, b in bounds], dtype=np.int64)
    return np.searchsorted(ends, np.asarray(frame_indices, dtype=np.int64), side="right")
