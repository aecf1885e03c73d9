"""Video and image files for the identity evaluation: decoding through PyAV, images through Pillow.

read_sampled_frames() decodes a video once and keeps only the frames the metric samples
(OpenS2V: 32 evenly spaced, sampling.sample_frame_indices), so long videos do not have to fit in
memory; frame_rate() gives the time base of identity over time.
All frames are RGB uint8 numpy arrays [H, W, 3].
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .errors import MediaError
from .sampling import FACESIM_FRAMES, sample_frame_indices

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".gif")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def _av():
    try:
        import av  # noqa: F401
    except ImportError as e:  # pragma: no cover - av is a dependency
        raise MediaError(f"PyAV is needed to read videos ({e}); install it with: pip install av") from None
    return av


def _open(path):
    av = _av()
    p = Path(path)
    if not p.is_file():
        raise MediaError(f"video file not found: {p}")
    try:
        container = av.open(str(p))
    except Exception as e:
        raise MediaError(f"cannot read video {p}: {type(e).__name__}: {e}. Is it a video file "
                         f"({', '.join(VIDEO_EXTENSIONS)})?") from None
    if not container.streams.video:
        container.close()
        raise MediaError(f"cannot read video {p}: it has no video stream (an audio-only or image file?).")
    return container


def count_frames(path) -> int:
    """Number of video frames in a file: the container's count, else the number of video packets."""
    with _open(path) as c:
        stream = c.streams.video[0]
        if stream.frames and stream.frames > 0:
            return int(stream.frames)
        try:
            return sum(1 for pkt in c.demux(stream) if pkt.size)
        except Exception as e:
            raise MediaError(f"cannot read video {path}: {type(e).__name__}: {e}") from None


def read_frames(path, indices: Iterable[int] | None = None) -> tuple[list[np.ndarray], int]:
    """Decode a video; keep the frames at `indices` (all when None).

    Returns (frames, decoded_count): frames in the order of sorted unique `indices`, each
    [H, W, 3] uint8, and how many frames the file really had.
    """
    wanted = None if indices is None else set(int(i) for i in indices)
    frames: list[np.ndarray] = []
    n = 0
    with _open(path) as c:
        stream = c.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for frame in c.decode(stream):
                if wanted is None or n in wanted:
                    frames.append(frame.to_ndarray(format="rgb24"))
                n += 1
        except Exception as e:
            if n == 0:
                raise MediaError(f"cannot decode video {path}: {type(e).__name__}: {e}") from None
            # a truncated file: keep what decoded
    if n == 0:
        raise MediaError(f"cannot read video {path}: no frame could be decoded.")
    return frames, n


def frame_rate(path) -> float | None:
    """The video's frame rate in frames per second (the stream's average rate), None when the file does not
    say."""
    with _open(path) as c:
        rate = c.streams.video[0].average_rate or c.streams.video[0].guessed_rate
    return float(rate) if rate and float(rate) > 0 else None


def read_sampled_frames(path, num_frames: int | None = FACESIM_FRAMES) -> tuple[list[np.ndarray], np.ndarray, int]:
    """Decode only the frames the metrics sample (OpenS2V linspace, sampling.sample_frame_indices).

    Returns (frames [F] of [H, W, 3] uint8, indices [F] int64, total_frames). Indices may repeat
    for videos shorter than num_frames (as OpenS2V); each distinct frame is decoded once.
    """
    total = count_frames(path)
    if total < 1:
        raise MediaError(f"cannot read video {path}: it has no frames.")
    idx = sample_frame_indices(total, num_frames)
    frames, decoded = read_frames(path, idx)
    if decoded != total:  # the container's count was off: sample again from the real count
        total = decoded
        idx = sample_frame_indices(total, num_frames)
        frames, _ = read_frames(path, idx)
    by_index = dict(zip(sorted(set(int(i) for i in idx)), frames))
    return [by_index[int(i)] for i in idx], idx, total


def load_reference(path) -> tuple[np.ndarray, list[str]]:
    """A reference image for the identity metrics, read as OpenS2V-Eval reads it
    (``np.array(Image.open(path).convert("RGB"))``) through the pack's one photo reader: alpha dropped
    WITHOUT compositing (the colour under transparent pixels is what gets scored), EXIF orientation NOT
    applied; 16-bit and float grey scaled to 8 bits instead of clipped to white or black, a photo above
    photos.MAX_SIDE scaled down. Returns (RGB uint8 [H, W, 3], notes): a note for each of these, since the
    reading may differ from what the photo shows."""
    from .photos import SIXTEEN_BIT, read_photo

    p = Path(path)
    photo = read_photo(p, orient=False, on_white=False)
    notes = list(photo.notes)
    if photo.exif_orientation != 1:
        notes.append(f"{p.name}: its EXIF orientation ({photo.exif_orientation}) is not applied (as in OpenS2V-Eval); "
                     f"save the photo upright if the face is sideways.")
    if photo.alpha is not None and (photo.alpha < 1).any():
        notes.append(f"{p.name}: transparent pixels are scored with the colour stored under them, not "
                     f"composited (as in OpenS2V-Eval).")
    if photo.mode in SIXTEEN_BIT + ("F",):
        notes.append(f"{p.name}: {photo.mode} grey read as 8-bit grey (OpenS2V-Eval's convert('RGB') would clip "
                     f"it to white or black).")
    return photo.rgb, notes


def list_media(folder, extensions: Sequence[str]) -> list[Path]:
    """Files in `folder` (not recursive) whose suffix is in `extensions`, sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in extensions)
