"""Real face photos for the tests and the helpers that derive images from them.

The photos ship inside the insightface wheel (installed on the test hosts for that reason; the
library environment has them unpacked without the package):
Tom_Hanks_54745.png, a 112x112 aligned portrait (yaw about +25 degrees), and t1.jpg, a group
photo with six people. Derived images (flips, rotations, crops, resizes) are made at run time.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# the six faces of t1.jpg (x1, y1, x2, y2), found once with dlib's HOG detector
T1_FACES = [(67, 283, 175, 390), (275, 176, 364, 265), (450, 295, 557, 402), (724, 367, 832, 474),
            (870, 67, 999, 196), (1118, 283, 1226, 390)]


def images_dir() -> Path:
    """insightface's data/images folder ($MV2ID_TEST_PHOTOS where the environment has the photos without
    the package: tools/setup_host.py unpacks them for the library environment); skips the test without them."""
    if os.environ.get("MV2ID_TEST_PHOTOS"):
        return Path(os.environ["MV2ID_TEST_PHOTOS"])
    spec = importlib.util.find_spec("insightface")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the test photos ship with the insightface package, which is not installed")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "images"


def load_photos() -> tuple[np.ndarray, np.ndarray]:
    """(Tom Hanks portrait, t1 group photo) as RGB uint8 arrays."""
    d = images_dir()
    return (np.asarray(Image.open(d / "Tom_Hanks_54745.png").convert("RGB")),
            np.asarray(Image.open(d / "t1.jpg").convert("RGB")))


def fit(a: np.ndarray, size: int = 128) -> np.ndarray:
    """Resize to size x size (bicubic)."""
    return np.asarray(Image.fromarray(np.ascontiguousarray(a)).resize((size, size), Image.BICUBIC))


def rot(a: np.ndarray, deg: float) -> np.ndarray:
    """Rotate counter-clockwise by `deg` degrees (PIL's convention), grey fill."""
    return np.asarray(Image.fromarray(np.ascontiguousarray(a)).rotate(deg, resample=Image.BICUBIC,
                                                                       fillcolor=(128, 128, 128)))


def t1_face(t1: np.ndarray, i: int, margin: float = 0.5) -> np.ndarray:
    """Face i of the group photo with `margin` face widths of context on each side."""
    x1, y1, x2, y2 = T1_FACES[i]
    m = int((x2 - x1) * margin)
    return np.ascontiguousarray(t1[max(0, y1 - m):y2 + m, max(0, x1 - m):x2 + m])
