"""Image geometry as insightface does it (OpenCV's rules), with torch and kornia instead of OpenCV.

- ``warp_affine``: ``cv2.warpAffine(img, M, size, borderValue=0)``: M maps source pixels to output
  pixels, pixel centres at integer coordinates, bilinear, zero outside the image. kornia's
  ``warp_affine`` with ``align_corners=True`` is that convention; it differs from OpenCV only by
  OpenCV's fixed-point rounding (at most one grey level, checked in the tests).
- ``resize_bilinear``: ``cv2.resize(img, (w, h))`` (INTER_LINEAR): half-pixel centres, no
  antialiasing when shrinking (unlike PIL's resize), within one grey level.
- ``similarity_transform`` / ``norm_crop``: insightface's ``face_align.estimate_norm`` /
  ``norm_crop``: the least-squares similarity (rotation, uniform scale, shift; no reflection) of
  the five keypoints onto the ArcFace template, the same optimum as skimage's Umeyama estimate.
- ``halve``: ``cv2.resize`` by exactly 1/2 (INTER_LINEAR), which is the 2x2 mean rounded half up:
  exact, used by OpenS2V's FaceSim-Cur on its 224 -> 112 crops.

Images are RGB (or any channel order) uint8 numpy arrays [H, W, C].
"""
from __future__ import annotations

import numpy as np

from ..errors import FaceAnalysisError

# ArcFace's 5-point template for 112x112 crops (insightface face_align.arcface_dst), pixels
ARCFACE_TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                             [41.5493, 92.3655], [70.7299, 92.2041]], np.float32)


def _torch_kornia():
    import torch
    try:
        import kornia
    except ImportError as e:
        raise FaceAnalysisError(f"face alignment needs kornia ({e}); it comes with ComfyUI, or: pip install kornia") \
            from None
    return torch, kornia


def _to_tensor(image: np.ndarray):
    """[H, W, C] uint8 -> [1, C, H, W] float32 (0..255)."""
    import torch
    from einops import rearrange
    return rearrange(torch.from_numpy(np.array(image, np.float32)), "h w c -> 1 c h w")


def _to_uint8(t) -> np.ndarray:
    """[1, C, H, W] float 0..255 -> [H, W, C] uint8, rounded to the nearest level (OpenCV rounds too)."""
    from einops import rearrange
    return (rearrange(t, "1 c h w -> h w c") + 0.5).floor().clamp(0, 255).byte().numpy()


def warp_affine(image: np.ndarray, M: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """cv2.warpAffine(image, M, size, borderValue=0): image [H, W, C] uint8, M [2, 3] source -> output
    pixels, size (w, h) -> [h, w, C] uint8, bilinear, black outside the image."""
    torch, kornia = _torch_kornia()
    out = kornia.geometry.transform.warp_affine(
        _to_tensor(image), torch.as_tensor(np.asarray(M, np.float64)[None], dtype=torch.float32),
        dsize=(int(size[1]), int(size[0])), mode="bilinear", padding_mode="zeros", align_corners=True)
    return _to_uint8(out)


def resize_bilinear(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """cv2.resize(image, size) with INTER_LINEAR: image [H, W, C] uint8, size (w, h) -> [h, w, C] uint8."""
    import torch
    out = torch.nn.functional.interpolate(_to_tensor(image), size=(int(size[1]), int(size[0])), mode="bilinear",
                                          align_corners=False, antialias=False)
    return _to_uint8(out)


def halve(image: np.ndarray) -> np.ndarray:
    """cv2.resize to exactly half the size (INTER_LINEAR) = the 2x2 mean rounded half up.

    image [2h, 2w, C] uint8 -> [h, w, C] uint8."""
    h, w = image.shape[0] // 2, image.shape[1] // 2
    if image.shape[0] != 2 * h or image.shape[1] != 2 * w:
        raise ValueError(f"halve needs even sides, got {list(image.shape[:2])}")
    s = image.astype(np.int32).reshape(h, 2, w, 2, -1).sum(axis=(1, 3))
    return ((s + 2) // 4).astype(np.uint8)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity [2, 3] (rotation, uniform scale, shift) mapping src [N, 2] onto dst [N, 2]."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    n = src.shape[0]
    # dst_x = a*x - b*y + tx ; dst_y = b*x + a*y + ty  (a, b free: every rotation and scale, no reflection)
    A = np.zeros((2 * n, 4))
    A[0::2] = np.stack([src[:, 0], -src[:, 1], np.ones(n), np.zeros(n)], 1)
    A[1::2] = np.stack([src[:, 1], src[:, 0], np.zeros(n), np.ones(n)], 1)
    a, b, tx, ty = np.linalg.lstsq(A, dst.reshape(-1), rcond=None)[0]
    return np.array([[a, -b, tx], [b, a, ty]])


def norm_matrix(kps: np.ndarray, size: int) -> np.ndarray:
    """insightface's estimate_norm: M [2, 3] taking the 5 keypoints onto the ArcFace template scaled to
    `size` (size % 112 == 0: template * size/112; else size % 128 == 0: template * size/128, x + 8*size/128)."""
    if size % 112 == 0:
        dst = ARCFACE_TEMPLATE * np.float32(size / 112.0)
    elif size % 128 == 0:
        dst = ARCFACE_TEMPLATE * np.float32(size / 128.0)
        dst[:, 0] += 8.0 * size / 128.0
    else:
        raise ValueError(f"aligned crop size must be a multiple of 112 or 128, got {size}")
    return similarity_transform(kps, dst)


def norm_crop(image: np.ndarray, kps: np.ndarray, size: int = 112) -> np.ndarray:
    """insightface's face_align.norm_crop: the size x size crop aligned on the 5 keypoints [5, 2]."""
    return warp_affine(image, norm_matrix(kps, size), (size, size))
