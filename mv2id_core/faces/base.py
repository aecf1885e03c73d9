"""One small interface for every face-analysis backend (insightface, dlib), and the one policy
every caller uses to pick a face: OpenS2V-Eval's (``find_face``).

Conventions, shared by all backends so views, metrics and training agree:
- images are RGB uint8 numpy arrays of shape [H, W, 3] (``as_rgb_uint8`` converts; it is the one
  converter from ComfyUI's float IMAGE too);
- boxes are (x1, y1, x2, y2) in pixels; keypoints are [5, 2] (x, y) pixels in the order
  left eye, right eye, nose tip, left mouth corner, right mouth corner, where "left" is the
  side on the image's left;
- head pose in degrees as ``faces.pose`` defines it (insightface's convention): yaw > 0 when the
  nose turns towards the image's right, pitch > 0 when the face looks up, roll > 0 when the face
  is turned clockwise in the image; a horizontal flip negates yaw and roll;
- embeddings are float32 unit vectors (L2 norm 1), so cosine similarity is a dot product.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from ..photos import composite_on_white

# OpenS2V-Eval's no-face retry (eval/get_facesim.py, pad_np_bgr_image(scale=1.25)): every side padded
# by 25% of the image's height (top, bottom) or width (left, right), grey 128, one retry.
RETRY_PAD_FRACTION = 0.25
RETRY_PAD_VALUE = 128


@dataclass
class Face:
    bbox: np.ndarray                 # [4] float32, x1 y1 x2 y2
    kps: np.ndarray                  # [5, 2] float32
    det_score: float
    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0
    embedding: np.ndarray | None = None   # [D] float32, unit norm
    landmarks: np.ndarray | None = None   # [68, 2] (dlib) or [68, 3] (insightface 1k3d68) float32, optional
    extra: dict = field(default_factory=dict)

    @property
    def area(self) -> float:
        x1, y1, x2, y2 = (float(v) for v in self.bbox)
        return max(0.0, x2 - x1) * max(0.0, y2 - y1)

    @property
    def size(self) -> float:
        """Side length of the face box (geometric mean of width and height), pixels."""
        return float(np.sqrt(self.area))

    def shifted(self, dx: float, dy: float) -> "Face":
        """The same face with box, keypoints and landmarks moved by (dx, dy) pixels (embedding kept)."""
        d2 = np.array([dx, dy], np.float32)
        lm = None
        if self.landmarks is not None:
            lm = np.array(self.landmarks, np.float32)
            lm[:, :2] += d2
        return Face(bbox=np.asarray(self.bbox, np.float32) + np.array([dx, dy, dx, dy], np.float32),
                    kps=np.asarray(self.kps, np.float32) + d2, det_score=self.det_score, yaw=self.yaw,
                    pitch=self.pitch, roll=self.roll, embedding=self.embedding, landmarks=lm, extra=dict(self.extra))


class FaceAnalyzer(ABC):
    """detect + pose + embed. Implementations import their libraries lazily (in __init__).

    retry: whether ``find_face`` (the one face-choice policy) retries on a grey-padded image when
    nothing is found; backends never retry inside ``analyze``.
    """

    name: str = "base"
    embedding_dim: int = 0
    retry: bool = True

    @abstractmethod
    def analyze(self, image: np.ndarray, embed: bool = True) -> list[Face]:
        """All faces of one detector pass over an RGB uint8 [H, W, 3] image, in the detector's order
        (best score first); [] when there is none."""

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


# ------------------------------------------------------------------------------------ the face policy
def largest_face(faces: list[Face]) -> Face | None:
    """OpenS2V's choice: the largest box area (x2 - x1) * (y2 - y1) (float32, no +1); among equal areas
    the LAST in detection order (its ``sorted(faces, key=area)[-1]``). None for no faces."""
    if not faces:
        return None
    areas = [float((np.float32(f.bbox[2]) - np.float32(f.bbox[0])) * (np.float32(f.bbox[3]) - np.float32(f.bbox[1])))
             for f in faces]
    return faces[max(range(len(faces)), key=lambda i: (areas[i], i))]


def pad_for_retry(image: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """OpenS2V's retry image: [H, W, 3] uint8 -> ([H + 2*top, W + 2*left, 3] uint8, (left, top)) with
    top = int(0.25 * H), left = int(0.25 * W), the border grey 128."""
    h, w = image.shape[:2]
    top, left = int(h * RETRY_PAD_FRACTION), int(w * RETRY_PAD_FRACTION)
    out = np.full((h + 2 * top, w + 2 * left, 3), RETRY_PAD_VALUE, dtype=np.uint8)
    out[top:top + h, left:left + w] = image
    return out, (left, top)


def find_face(analyzer: FaceAnalyzer, image, embed: bool = True, retry: bool | None = None,
              what: str = "image") -> tuple[Face | None, bool]:
    """The one face-finding policy of the pack (Face Views, Identity Score, mv2id-eval), as OpenS2V-Eval's
    FaceSim does it: the largest face (``largest_face``); when there is none and retry is on, one retry
    on the image padded by ``pad_for_retry``, with the found box, keypoints and landmarks moved back into
    the original image's pixels (so they may lie outside it). As in OpenS2V the embedding of such a
    face is the one computed on the padded image.

    image: RGB uint8 [H, W, 3] (or anything ``as_rgb_uint8`` takes); retry: None = the analyzer's setting.
    Returns (face or None, padded: whether the face came from the retry).
    """
    img = as_rgb_uint8(image, what)
    face = largest_face(analyzer.analyze(img, embed=embed))
    if face is not None:
        return face, False
    if not (analyzer.retry if retry is None else retry):
        return None, False
    big, (left, top) = pad_for_retry(img)
    face = largest_face(analyzer.analyze(big, embed=embed))
    if face is None:
        return None, False
    return face.shifted(-left, -top), True


# ------------------------------------------------------------------------------------ images
def as_rgb_uint8(image, what: str = "image") -> np.ndarray:
    """One image -> RGB uint8 [H, W, 3]: the pack's one image converter.

    Accepts uint8 or float (0..1, ComfyUI's IMAGE) arrays, numpy or CPU torch, shaped [H, W],
    [H, W, 1], [H, W, 3] or [H, W, 4] (alpha composited on white, as every photo the pack reads:
    ``photos.composite_on_white``). Floats are rounded to the nearest level. Raises InputError naming `what`.
    """
    if isinstance(image, (str, bytes)) or image is None:
        raise InputError(f"{what} must be an image array [H, W, 3], got {type(image).__name__} "
                         f"{image!r:.80}; load files first (mv2id_core.photos.read_photo).")
    try:
        arr = np.asarray(image)
    except Exception as e:  # e.g. a CUDA tensor
        raise InputError(f"{what} could not be read as an array ({type(image).__name__}): {e}; "
                         "pass a numpy array or a CPU tensor.") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise InputError(f"{what} must be a numeric image array [H, W, 3], got {type(image).__name__} "
                         f"of dtype {arr.dtype}.")
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[-1] not in (1, 3, 4) or min(arr.shape[:2]) < 1:
        raise InputError(f"{what} must be one RGB image [H, W, 3], got shape {list(arr.shape)}"
                         + ("; a batch of images belongs in a list, one item per image"
                            if arr.ndim == 4 else "") + ".")
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating):
            if not np.isfinite(arr).all():
                raise InputError(f"{what} contains NaN or infinite pixels; fix the step that made it.")
            arr = np.clip(arr.astype(np.float32), 0.0, 1.0) * 255.0 + 0.5
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    if arr.shape[-1] == 4:
        arr = composite_on_white(arr[..., :3], arr[..., 3].astype(np.float32) / 255.0)
    return np.ascontiguousarray(arr)


def as_image_list(images, what: str = "images") -> list[np.ndarray]:
    """A batch [N, H, W, C] (numpy or CPU torch, e.g. ComfyUI's IMAGE) or a sequence of images ->
    list of N RGB uint8 [H, W, 3] arrays (``as_rgb_uint8`` on each, named `what`[i])."""
    if images is None or isinstance(images, (str, bytes)):
        raise InputError(f"{what} must be a batch [N, H, W, 3] or a list of images, got {images!r:.80}.")
    if hasattr(images, "ndim") and hasattr(images, "shape"):
        if images.ndim == 3 and images.shape[-1] in (1, 3, 4):
            raise InputError(f"{what} must be several images [N, H, W, 3]; got one image "
                             f"{list(images.shape)}: wrap it in a list or add a batch axis.")
        if images.ndim != 4:
            raise InputError(f"{what} must be a batch of images [N, H, W, 3], got shape {list(images.shape)}.")
        items = [images[i] for i in range(images.shape[0])]
    else:
        try:
            items = list(images)
        except TypeError:
            raise InputError(f"{what} must be a batch [N, H, W, 3] or a list of images, "
                             f"got {type(images).__name__}.") from None
    return [as_rgb_uint8(x, f"{what}[{i}]") for i, x in enumerate(items)]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two embeddings (re-normalised, so it is safe on any vectors)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))
