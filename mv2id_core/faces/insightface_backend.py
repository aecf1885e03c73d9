"""The insightface backend: the antelopev2 / buffalo_l ONNX model packs, run with onnxruntime.

The `insightface` python package is not needed (its build fails on many Windows machines); the
three models this pack uses are small enough to drive directly:

- detector: SCRFD (scrfd_10g_bnkps.onnx, det_10g.onnx): boxes, scores and 5 keypoints;
- landmark_3d_68 (1k3d68.onnx): 68 landmarks, from which faces.pose fits the head pose;
- recognition: ArcFace (glintr100.onnx, w600k_r50.onnx): 512-d identity embedding of the
  5-point-aligned 112x112 crop.

Each model is one small class; roles are recognised from the ONNX signatures (as insightface's
model_zoo does), so renamed files still work. Layout: <root>/models/<pack>/*.onnx, where <root>
is ComfyUI's models/insightface folder.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from ..errors import FaceAnalysisError
from .base import Face, FaceAnalyzer, as_rgb_uint8
from .pose import ARCFACE_TEMPLATE, pose_from_kps5, pose_from_landmarks68

PACK_FILES = {
    "antelopev2": ("scrfd_10g_bnkps.onnx", "glintr100.onnx", "1k3d68.onnx", "2d106det.onnx", "genderage.onnx"),
    "buffalo_l": ("det_10g.onnx", "w600k_r50.onnx", "1k3d68.onnx", "2d106det.onnx", "genderage.onnx"),
}
_ORT_FIX = ("install exactly one onnxruntime build: pip uninstall -y onnxruntime onnxruntime-gpu, then "
            "pip install onnxruntime-gpu (CUDA) or pip install onnxruntime (CPU only)")


# ------------------------------------------------------------------------------------ geometry
def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, shift) [2, 3] mapping src [N, 2] onto dst [N, 2]."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    n = src.shape[0]
    # dst_x = a*x - b*y + tx ; dst_y = b*x + a*y + ty
    A = np.zeros((2 * n, 4))
    A[0::2] = np.stack([src[:, 0], -src[:, 1], np.ones(n), np.zeros(n)], 1)
    A[1::2] = np.stack([src[:, 1], src[:, 0], np.zeros(n), np.ones(n)], 1)
    a, b, tx, ty = np.linalg.lstsq(A, dst.reshape(-1), rcond=None)[0]
    return np.array([[a, -b, tx], [b, a, ty]])


def warp_affine(image: np.ndarray, M: np.ndarray, size: tuple[int, int], fill: int = 0) -> np.ndarray:
    """image warped by M [2, 3] (source pixel -> output pixel) into an output of size (w, h)."""
    from PIL import Image

    full = np.vstack([M, [0.0, 0.0, 1.0]])
    inv = np.linalg.inv(full)[:2]          # PIL wants output -> source
    out = Image.fromarray(np.ascontiguousarray(image)).transform(
        (int(size[0]), int(size[1])), Image.AFFINE, tuple(inv.reshape(-1)), resample=Image.BILINEAR,
        fillcolor=(fill,) * 3)
    return np.asarray(out, np.uint8)


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float = 0.4) -> list[int]:
    """Indices kept by greedy non-maximum suppression (IoU > threshold suppressed), best first."""
    x1, y1, x2, y2 = boxes.T
    areas = np.maximum(0, x2 - x1) * np.maximum(0, y2 - y1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        xx1 = np.maximum(x1[i], x1[order[1:]])
        yy1 = np.maximum(y1[i], y1[order[1:]])
        xx2 = np.minimum(x2[i], x2[order[1:]])
        yy2 = np.minimum(y2[i], y2[order[1:]])
        inter = np.maximum(0, xx2 - xx1) * np.maximum(0, yy2 - yy1)
        iou = inter / np.maximum(areas[i] + areas[order[1:]] - inter, 1e-9)
        order = order[1:][iou <= threshold]
    return keep


def _blob(images: np.ndarray, mean: float, std: float) -> np.ndarray:
    """RGB uint8 [N, H, W, 3] -> float32 NCHW normalised (the packs take RGB, as insightface feeds them)."""
    return ((np.asarray(images, np.float32) - mean) / std).transpose(0, 3, 1, 2).copy()


def _varint(f) -> int:
    shift = result = 0
    while True:
        b = f.read(1)
        if not b:
            raise EOFError("truncated protobuf")
        result |= (b[0] & 0x7F) << shift
        shift += 7
        if not b[0] & 0x80:
            return result


def _fields(f, end: int):
    """(field number, start, length) of the length-delimited fields of one protobuf message up to `end`."""
    while f.tell() < end:
        key = _varint(f)
        field, wire = key >> 3, key & 7
        if wire == 0:
            _varint(f)
        elif wire == 1:
            f.seek(8, 1)
        elif wire == 5:
            f.seek(4, 1)
        elif wire == 2:
            length = _varint(f)
            start = f.tell()
            yield field, start, length
            f.seek(start + length)
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")


def first_node_names(model_path: str, count: int = 8) -> list[str]:
    """Names of the first graph nodes of an ONNX file, read without the onnx package (which users need not
    install): ModelProto.graph (7) -> GraphProto.node (1) -> NodeProto.name (3)."""
    names = []
    with open(model_path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(0)
        for field, start, length in _fields(f, size):
            if field != 7:
                continue
            for gfield, gstart, glength in _fields(f, start + length):
                if gfield != 1:
                    continue
                name = ""
                for nfield, nstart, nlength in _fields(f, gstart + glength):
                    if nfield == 3:
                        f.seek(nstart)
                        name = f.read(nlength).decode("utf-8", "replace")
                names.append(name)
                if len(names) >= count:
                    return names
            break
    return names


def _normalised_in_graph(model_path: str) -> bool:
    """True when the graph starts with its own Sub/Mul normalisation (mxnet-converted models; then inputs are
    raw 0..255), by the node-name rule insightface uses."""
    names = first_node_names(model_path)
    sub = any(n.startswith(("Sub", "_minus")) for n in names)
    mul = any(n.startswith(("Mul", "_mul")) for n in names)
    return sub and mul


# ------------------------------------------------------------------------------------ models
class _OnnxModel:
    def __init__(self, path: str, session):
        self.path, self.session = path, session
        self.input_name = session.get_inputs()[0].name
        self.input_shape = session.get_inputs()[0].shape
        self.output_names = [o.name for o in session.get_outputs()]


class SCRFD(_OnnxModel):
    """Face detector: anchor-free boxes and keypoints as distances from anchor centres, per stride."""

    def __init__(self, path, session, nms_threshold: float = 0.4):
        super().__init__(path, session)
        n = len(self.output_names)
        layouts = {6: (3, False), 9: (3, True), 10: (5, False), 15: (5, True)}
        if n not in layouts:
            raise FaceAnalysisError(f"{Path(path).name} has {n} outputs; not an SCRFD detector (6, 9, 10 or 15)")
        self.levels, self.use_kps = layouts[n]
        self.strides = [8, 16, 32] if self.levels == 3 else [8, 16, 32, 64, 128]
        self.num_anchors = 2 if self.levels == 3 else 1
        self.nms_threshold = nms_threshold
        self._centres = {}

    def _anchor_centres(self, h: int, w: int, stride: int) -> np.ndarray:
        key = (h, w, stride)
        if key not in self._centres:
            ys, xs = np.mgrid[:h, :w]
            c = (np.stack([xs, ys], -1).reshape(-1, 2) * stride).astype(np.float32)
            self._centres[key] = np.repeat(c, self.num_anchors, axis=0)
        return self._centres[key]

    def detect(self, image: np.ndarray, det_size: int, threshold: float):
        """(boxes [N, 4], scores [N], kps [N, 5, 2] or None) in `image` pixels."""
        h, w = image.shape[:2]
        s = det_size / max(h, w)
        nh, nw = max(1, int(round(h * s))), max(1, int(round(w * s)))
        from PIL import Image

        canvas = np.zeros((det_size, det_size, 3), np.uint8)     # SCRFD was trained with zero padding
        canvas[:nh, :nw] = np.asarray(Image.fromarray(image).resize((nw, nh), Image.BILINEAR))
        scale = nh / h
        outs = self.session.run(self.output_names, {self.input_name: _blob(canvas[None], 127.5, 128.0)})
        boxes, scores, kpss = [], [], []
        for i, stride in enumerate(self.strides):
            sc = outs[i].reshape(-1)
            bb = outs[i + self.levels].reshape(-1, 4) * stride
            gh, gw = det_size // stride, det_size // stride
            centres = self._anchor_centres(gh, gw, stride)
            if sc.shape[0] != centres.shape[0]:
                raise FaceAnalysisError(f"{Path(self.path).name}: {sc.shape[0]} scores at stride {stride}, expected "
                                        f"{centres.shape[0]}; is this an SCRFD model?")
            keep = np.nonzero(sc >= threshold)[0]
            c = centres[keep]
            d = bb[keep]
            boxes.append(np.concatenate([c - d[:, :2], c + d[:, 2:]], 1))
            scores.append(sc[keep])
            if self.use_kps:
                k = outs[i + 2 * self.levels].reshape(-1, 10)[keep] * stride
                kpss.append(c[:, None, :] + k.reshape(-1, 5, 2))
        boxes = np.concatenate(boxes) / scale
        scores = np.concatenate(scores)
        kps = np.concatenate(kpss) / scale if self.use_kps else None
        keep = nms(boxes, scores, self.nms_threshold)
        return boxes[keep], scores[keep], (kps[keep] if kps is not None else None)


class Landmark3D68(_OnnxModel):
    """68 landmarks (x, y, z) from a 192x192 crop around the face box (1k3d68)."""

    size = 192

    def __init__(self, path, session):
        super().__init__(path, session)
        raw = _normalised_in_graph(path)
        self.mean, self.std = (0.0, 1.0) if raw else (127.5, 128.0)

    def landmarks(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        """[68, 2] image pixels."""
        x1, y1, x2, y2 = (float(v) for v in box)
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        s = self.size / (max(x2 - x1, y2 - y1) * 1.5)
        M = np.array([[s, 0, self.size / 2 - s * cx], [0, s, self.size / 2 - s * cy]])
        crop = warp_affine(image, M, (self.size, self.size))
        pred = self.session.run(self.output_names[:1], {self.input_name: _blob(crop[None], self.mean, self.std)})[0][0]
        pred = pred.reshape(-1, 3)[-68:, :2].astype(np.float64)
        pred = (pred + 1.0) * (self.size // 2)                  # [-1, 1] -> crop pixels
        return ((pred - M[:, 2]) / s).astype(np.float32)        # crop -> image pixels


class ArcFace(_OnnxModel):
    """512-d identity embedding of the 112x112 crop aligned on the 5 keypoints."""

    size = 112

    def __init__(self, path, session):
        super().__init__(path, session)
        raw = _normalised_in_graph(path)
        self.mean, self.std = (0.0, 1.0) if raw else (127.5, 127.5)

    def aligned_crop(self, image: np.ndarray, kps: np.ndarray) -> np.ndarray:
        M = similarity_transform(kps, ARCFACE_TEMPLATE)
        return warp_affine(image, M, (self.size, self.size))

    def embed(self, image: np.ndarray, kps: np.ndarray) -> np.ndarray:
        crop = self.aligned_crop(image, kps)
        v = self.session.run(self.output_names[:1], {self.input_name: _blob(crop[None], self.mean, self.std)})[0][0]
        v = np.asarray(v, np.float32).reshape(-1)
        return v / max(float(np.linalg.norm(v)), 1e-12)


def _role(session) -> str:
    """detector / landmark_3d_68 / recognition / other, from the model's signature (model_zoo's rules)."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    shape = inputs[0].shape
    if len(outputs) >= 5:
        return "detector"
    hw = shape[2:4] if len(shape) == 4 else [None, None]
    if hw == [192, 192]:
        out = outputs[0].shape
        return "landmark_3d_68" if len(out) == 2 and out[1] == 3309 else "other"
    if len(inputs) == 1 and hw[0] == hw[1] and isinstance(hw[0], int) and hw[0] >= 112 and hw[0] % 16 == 0:
        return "recognition"
    return "other"


# ------------------------------------------------------------------------------------ the analyzer
def find_pack(model_dir, pack: str) -> Path:
    """<model_dir>/models/<pack>, or a FaceAnalysisError that says where the files are and where they go."""
    root = Path(model_dir)
    want = root / "models" / pack
    files = PACK_FILES.get(pack)
    expected = f" ({', '.join(files)})" if files else ""
    if want.is_dir() and any(want.glob("*.onnx")):
        return want
    nested = want / pack
    if nested.is_dir() and any(nested.glob("*.onnx")):
        raise FaceAnalysisError(
            f"the insightface pack {pack!r} is nested one folder too deep: the .onnx files are in {nested}. "
            f"Move them up into {want} (unzipping {pack}.zip inside a folder of the same name does this).")
    for stray in (root, root / "models"):
        if stray.is_dir() and any(stray.glob("*.onnx")):
            raise FaceAnalysisError(
                f"found .onnx files directly in {stray}, but each insightface pack needs its own folder: move the "
                f"{pack} files{expected} into {want}.")
    raise FaceAnalysisError(
        f"the insightface model pack {pack!r} was not found: expected its .onnx files{expected} in {want}. "
        f"Download the pack from the insightface releases and put the files there.")


class InsightFaceAnalyzer(FaceAnalyzer):
    """insightface model packs on onnxruntime.

    pack: folder name under <model_dir>/models/ (antelopev2, buffalo_l); model_dir: the insightface
    root (ComfyUI: models/insightface); provider: "cpu", "cuda" or "auto" (CUDA when onnxruntime
    offers it); det_size: square detector input; det_thresh: score threshold; retry: when nothing
    is found, try the detector at 480 and 320 px, then on the image padded by 1.25x with grey (128)
    as OpenS2V does for faces cut by the border.
    """

    name = "insightface"
    embedding_dim = 512

    def __init__(self, pack: str = "antelopev2", model_dir=None, provider: str = "auto", det_size: int = 640,
                 det_thresh: float = 0.5, retry: bool = True):
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise FaceAnalysisError(f"the insightface face backend needs onnxruntime ({e}); {_ORT_FIX}") from None
        if provider not in ("cpu", "cuda", "auto"):
            raise ValueError(f"provider must be 'cpu', 'cuda' or 'auto', got {provider!r}")
        det_size = int(det_size)
        if det_size < 64 or det_size % 32:
            raise ValueError(f"det_size must be a multiple of 32 and at least 64, got {det_size}")
        if model_dir is None:
            model_dir = os.environ.get("INSIGHTFACE_HOME", str(Path.home() / ".insightface"))
        available = ort.get_available_providers()
        if provider == "cuda" and "CUDAExecutionProvider" not in available:
            raise FaceAnalysisError(
                f"provider 'cuda' was asked for, but this onnxruntime offers only {', '.join(available)}. That "
                f"happens when the CPU package shadows onnxruntime-gpu (both installed) or onnxruntime-gpu does not "
                f"match the CUDA version: {_ORT_FIX}. Or set provider to 'cpu'.")
        use_cuda = provider == "cuda" or (provider == "auto" and "CUDAExecutionProvider" in available)
        self.providers = (["CUDAExecutionProvider"] if use_cuda else []) + ["CPUExecutionProvider"]
        self.pack, self.det_size, self.det_thresh, self.retry = pack, det_size, float(det_thresh), bool(retry)
        self.pack_dir = find_pack(model_dir, pack)

        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        roles: dict[str, object] = {}
        for path in sorted(self.pack_dir.glob("*.onnx")):
            try:
                sess = ort.InferenceSession(str(path), sess_options=opts, providers=self.providers)
            except Exception as e:   # a truncated download is the usual cause
                raise FaceAnalysisError(f"onnxruntime cannot load {path} ({type(e).__name__}: {e}); the file may be "
                                        f"incomplete: download the {pack} pack again.") from None
            role = _role(sess)
            if role == "other" or role in roles:
                continue
            cls = {"detector": SCRFD, "landmark_3d_68": Landmark3D68, "recognition": ArcFace}[role]
            roles[role] = cls(str(path), sess)
        missing = [r for r in ("detector", "recognition") if r not in roles]
        if missing:
            names = {"detector": "a detector (scrfd_10g_bnkps.onnx or det_10g.onnx)",
                     "recognition": "a recognition model (glintr100.onnx or w600k_r50.onnx)"}
            raise FaceAnalysisError(f"the insightface pack in {self.pack_dir} has no "
                                    f"{' and no '.join(names[m] for m in missing)}; use a complete antelopev2 or "
                                    f"buffalo_l pack.")
        self.detector: SCRFD = roles["detector"]
        self.recognition: ArcFace = roles["recognition"]
        self.landmark: Landmark3D68 | None = roles.get("landmark_3d_68")
        if not self.detector.use_kps:
            raise FaceAnalysisError(f"{Path(self.detector.path).name} predicts no keypoints; Mv2ID needs a "
                                    f"keypoint detector (scrfd_10g_bnkps / det_10g).")

    def describe(self) -> str:
        where = "CUDA" if self.providers[0].startswith("CUDA") else "CPU"
        pose = "1k3d68 landmarks" if self.landmark is not None else "5 keypoints"
        return f"insightface {self.pack} ({where}, det_size {self.det_size}, pose from {pose})"

    def detect(self, image: np.ndarray):
        """(boxes, scores, kps, attempt) with the retries; attempt names the pass that found faces."""
        img = as_rgb_uint8(image)
        attempts = [(self.det_size, 0, "as is")]
        if self.retry:
            attempts += [(s, 0, f"det_size {s}") for s in (480, 320) if s < self.det_size]
            h, w = img.shape[:2]
            attempts.append((self.det_size, int(math.ceil(0.125 * max(h, w))), "grey padding"))
        for size, pad, label in attempts:
            im = img if not pad else np.pad(img, ((pad, pad), (pad, pad), (0, 0)), constant_values=128)
            boxes, scores, kps = self.detector.detect(im, size, self.det_thresh)
            if len(boxes):
                if pad:
                    boxes = boxes - pad
                    kps = kps - pad
                return boxes, scores, kps, label
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32), None

    def analyze(self, image: np.ndarray, embed: bool = True) -> list[Face]:
        img = as_rgb_uint8(image)
        boxes, scores, kpss, attempt = self.detect(img)
        faces = []
        for box, score, kps in zip(boxes, scores, kpss):
            lm = None
            if self.landmark is not None:
                lm = self.landmark.landmarks(img, box)
                yaw, pitch, roll = pose_from_landmarks68(lm)
            else:
                yaw, pitch, roll = pose_from_kps5(kps)
            face = Face(bbox=np.asarray(box, np.float32), kps=np.asarray(kps, np.float32), det_score=float(score),
                        yaw=yaw, pitch=pitch, roll=roll, landmarks=lm, extra={"attempt": attempt})
            if embed:
                face.embedding = self.recognition.embed(img, kps)
            faces.append(face)
        faces.sort(key=lambda f: f.area, reverse=True)
        return faces

    def embed_face(self, image: np.ndarray, face: Face) -> np.ndarray:
        """Identity embedding [512] (unit norm) of a face found by analyze(..., embed=False)."""
        return self.recognition.embed(as_rgb_uint8(image), face.kps)
