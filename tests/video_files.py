"""Writing test videos (the library only reads them): RGB uint8 frames to an h264 file with PyAV."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Sequence

import numpy as np


def write_video(path, frames: Sequence[np.ndarray], fps: float = 16.0, codec: str = "libx264", crf: int = 18) -> Path:
    """Encode RGB uint8 frames [H, W, 3] (even sizes for h264) to a video file; returns the path."""
    import av

    frames = [np.ascontiguousarray(f, dtype=np.uint8) for f in frames]
    if not frames:
        raise ValueError("no frames to write.")
    h, w = frames[0].shape[:2]
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(p), mode="w") as c:
        s = c.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        if codec == "libx264":
            s.options = {"crf": str(crf)}
        for f in frames:
            if f.shape[:2] != (h, w):
                raise ValueError(f"all frames must have the same size; got {f.shape[:2]} after {(h, w)}.")
            for pkt in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    return p
