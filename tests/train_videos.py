"""Short test videos for mv2id-data, made from the real photos that ship with insightface."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from video_files import write_video
from photos import load_photos, t1_face

SIZE = 256


def _paste(canvas: np.ndarray, img: np.ndarray, x: int, y: int) -> np.ndarray:
    out = canvas.copy()
    h, w = img.shape[:2]
    out[y:y + h, x:x + w] = img
    return out


def _face(a: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(np.ascontiguousarray(a)).resize((size, size), Image.BICUBIC))


def turning_head(n: int = 40) -> list[np.ndarray]:
    """One person whose head 'turns': the portrait (yaw about +25) then its mirror image (about -25),
    drifting a little from frame to frame."""
    hanks, _ = load_photos()
    face = _face(hanks, 150)
    canvas = np.full((SIZE, SIZE, 3), 128, np.uint8)
    frames = []
    for f in range(n):
        img = face if f < n // 2 else face[:, ::-1]
        frames.append(_paste(canvas, np.ascontiguousarray(img), 40 + (f % 5) * 3, 50 + (f % 3) * 2))
    return frames


def still_head(n: int = 40) -> list[np.ndarray]:
    """The same person not turning (small yaw span)."""
    hanks, _ = load_photos()
    face = _face(hanks, 150)
    canvas = np.full((SIZE, SIZE, 3), 128, np.uint8)
    return [_paste(canvas, face, 40 + (f % 5) * 3, 50) for f in range(n)]


def two_people(n: int = 40) -> list[np.ndarray]:
    """Two people of the same size in every frame (competing faces)."""
    _, t1 = load_photos()
    a, b = _face(t1_face(t1, 0), 120), _face(t1_face(t1, 2), 120)
    canvas = np.full((SIZE, 2 * SIZE, 3), 128, np.uint8)
    frames = []
    for f in range(n):
        img = _paste(canvas, a if f < n // 2 else np.ascontiguousarray(a[:, ::-1]), 20, 60)
        frames.append(_paste(img, b if f < n // 2 else np.ascontiguousarray(b[:, ::-1]), SIZE + 60, 60))
    return frames


def no_face(n: int = 40) -> list[np.ndarray]:
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    return [np.stack([(xx + f) % 256, yy, np.full_like(xx, 90)], -1).astype(np.uint8) for f in range(n)]


def write_all(folder: Path, fps: float = 16.0) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, make in (("turning", turning_head), ("still", still_head), ("two_people", two_people),
                       ("no_face", no_face)):
        out[name] = write_video(folder / f"{name}.mp4", make(), fps=fps)
    return out
