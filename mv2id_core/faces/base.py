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


class FaceAnalysisError(RuntimeError):
    """A backend cannot run: a missing library or model file. The message says how to fix it."""


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

    def describe(self) -> str:
        return self.name


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two embeddings (re-normalised, so it is safe on any vectors)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))
