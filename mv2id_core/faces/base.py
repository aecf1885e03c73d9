"""One small interface for every face-analysis backend (insightface, dlib, ...).

Conventions, shared by all backends so views, metrics and training agree:
- images are RGB uint8 numpy arrays of shape [H, W, 3];
- boxes are (x1, y1, x2, y2) in pixels; keypoints are [5, 2] (x, y) pixels in the order
  left eye, right eye, nose tip, left mouth corner, right mouth corner, where "left" is the
  side on the image's left;
- head pose in degrees: yaw > 0 when the nose points towards the image's right side
  (so a horizontal flip negates yaw and roll), pitch > 0 when the face looks up, roll > 0
  when the face is rotated clockwise in the image;
- embeddings are float32 unit vectors (L2 norm 1), so cosine similarity is a dot product.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Face:
    bbox: np.ndarray                 # [4] float32, x1 y1 x2 y2
    kps: np.ndarray                  # [5, 2] float32
    det_score: float
    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0
    embedding: np.ndarray | None = None   # [D] float32, unit norm
    landmarks: np.ndarray | None = None   # [N, 2] float32 (68 points for dlib), optional
    extra: dict = field(default_factory=dict)

    @property
    def area(self) -> float:
        x1, y1, x2, y2 = (float(v) for v in self.bbox)
        return max(0.0, x2 - x1) * max(0.0, y2 - y1)

    @property
    def size(self) -> float:
        """Side length of the face box (geometric mean of width and height), pixels."""
        return float(np.sqrt(self.area))

    def to_dict(self) -> dict:
        return {"bbox": [round(float(v), 2) for v in self.bbox], "det_score": round(float(self.det_score), 4),
                "yaw": round(float(self.yaw), 2), "pitch": round(float(self.pitch), 2),
                "roll": round(float(self.roll), 2)}


class FaceAnalyzer(ABC):
    """detect + pose + embed. Implementations import their libraries lazily (in __init__)."""

    name: str = "base"
    embedding_dim: int = 0

    @abstractmethod
    def analyze(self, image: np.ndarray, embed: bool = True) -> list[Face]:
        """All faces in an RGB uint8 [H, W, 3] image, largest first; [] when there is none."""

    def largest_face(self, image: np.ndarray, embed: bool = True) -> Face | None:
        faces = self.analyze(image, embed=embed)
        return faces[0] if faces else None

    def embed_face(self, image: np.ndarray, face: Face) -> np.ndarray | None:
        """Identity embedding of a face found by analyze(..., embed=False). Backends override this with a
        direct embedding of that face; this fallback analyses again and takes the best-overlapping face."""
        best, best_iou = None, 0.0
        for f in self.analyze(image, embed=True):
            x1, y1 = np.maximum(f.bbox[:2], face.bbox[:2])
            x2, y2 = np.minimum(f.bbox[2:], face.bbox[2:])
            inter = max(0.0, float(x2 - x1)) * max(0.0, float(y2 - y1))
            iou = inter / max(f.area + face.area - inter, 1e-9)
            if iou > best_iou:
                best, best_iou = f, iou
        return None if best is None else best.embedding

    def describe(self) -> str:
        return self.name


def as_rgb_uint8(image, what: str = "image", error: type[Exception] = ValueError) -> np.ndarray:
    """One image -> RGB uint8 [H, W, 3].

    Accepts uint8 or float (0..1) arrays (numpy or CPU torch) shaped [H, W], [H, W, 1],
    [H, W, 3] or [H, W, 4] (alpha dropped). Raises `error` naming `what` otherwise.
    """
    if isinstance(image, (str, bytes)) or image is None:
        raise error(f"{what} must be an image array [H, W, 3], got {type(image).__name__} "
                           f"{image!r:.80}; load files first (mv2id_core.video_io.load_image).")
    try:
        arr = np.asarray(image)
    except Exception as e:  # e.g. a CUDA tensor
        raise error(f"{what} could not be read as an array ({type(image).__name__}): {e}; "
                           "pass a numpy array or a CPU tensor.") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise error(f"{what} must be a numeric image array [H, W, 3], got {type(image).__name__} "
                           f"of dtype {arr.dtype}.")
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[-1] not in (1, 3, 4) or min(arr.shape[:2]) < 1:
        raise error(f"{what} must be one RGB image [H, W, 3], got shape {list(arr.shape)}"
                           + ("; a batch of images belongs in a list, one item per image"
                              if arr.ndim == 4 else "") + ".")
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    arr = arr[..., :3]
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating):
            arr = np.clip(np.nan_to_num(arr.astype(np.float32)), 0.0, 1.0) * 255.0 + 0.5
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(arr)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two embeddings (re-normalised, so it is safe on any vectors)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))
