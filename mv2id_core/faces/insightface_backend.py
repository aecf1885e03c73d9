"""The insightface backend: the antelopev2 / buffalo_l ONNX model packs, run with onnxruntime.

It computes what insightface's FaceAnalysis (version 2.1; 0.7.3 differs only in the order of
exactly tied detection scores) computes with det_size (s, s), without needing the `insightface`
package (its build fails on many Windows machines) or OpenCV:

- detector: SCRFD (scrfd_10g_bnkps.onnx, det_10g.onnx): the image resized into the square input
  as insightface does (``detector_input``), boxes, scores and 5 keypoints decoded from the anchor
  distances, insightface's NMS (``nms``);
- landmark_3d_68 (1k3d68.onnx): 68 (x, y, z) landmarks from the 192x192 crop around the box, and
  insightface's head pose fitted to them (faces.pose.pose_from_landmarks3d);
- recognition: ArcFace (glintr100.onnx, w600k_r50.onnx): the embedding of the 5-point-aligned
  112x112 crop (faces.align.norm_crop).

Input normalisation follows insightface's rules on the models' first node names
(``input_normalisation``). Roles are recognised from the ONNX signatures as model_zoo does, so
renamed files still work. Layout: <root>/models/<pack>/*.onnx, where <root> is ComfyUI's
models/insightface folder. tests/test_faces_insightface.py compares every step with the
insightface package's own classes on the same ONNX files.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import FaceAnalysisError, InputError, check_choice
from .align import norm_crop, resize_bilinear, warp_affine
from .base import Face, FaceAnalyzer, as_rgb_uint8
from .pose import pose_from_kps5, pose_from_landmarks3d

PACK_FILES = {
    "antelopev2": ("scrfd_10g_bnkps.onnx", "glintr100.onnx", "1k3d68.onnx", "2d106det.onnx", "genderage.onnx"),
    "buffalo_l": ("det_10g.onnx", "w600k_r50.onnx", "1k3d68.onnx", "2d106det.onnx", "genderage.onnx"),
}
PROVIDERS = ("auto", "cpu", "cuda")
_ORT_FIX = ("install exactly one onnxruntime build: pip uninstall -y onnxruntime onnxruntime-gpu, then "
            "pip install onnxruntime-gpu (CUDA) or pip install onnxruntime (CPU only)")


# ------------------------------------------------------------------------------------ insightface's rules
def nms(dets: np.ndarray, threshold: float = 0.4) -> list[int]:
    """insightface's NMS: dets [N, 5] float32 (x1, y1, x2, y2, score); widths and overlaps count +1 pixel;
    greedy by score (a stable sort, as insightface 2.1), a box is kept while its IoU with every kept
    box is <= threshold. Returns the kept row indices, best first."""
    x1, y1, x2, y2, scores = (dets[:, i] for i in range(5))
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size > 0:
        i = int(order[0])
        keep.append(i)
        w = np.maximum(0.0, np.minimum(x2[i], x2[order[1:]]) - np.maximum(x1[i], x1[order[1:]]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[order[1:]]) - np.maximum(y1[i], y1[order[1:]]) + 1)
        inter = w * h
        ovr = inter / (areas[i] + areas[order[1:]] - inter)
        order = order[np.where(ovr <= threshold)[0] + 1]
    return keep


def detector_input(image: np.ndarray, input_size: tuple[int, int]) -> tuple[np.ndarray, float]:
    """What insightface's detector sees: the image resized into input_size (w, h) keeping its aspect
    ratio, the free side truncated with int(), bilinear without antialiasing (cv2.resize), at the
    top-left of a black canvas. Returns (canvas [h, w, 3] uint8, det_scale = new height / image height,
    the one scale insightface divides boxes and keypoints by, on both axes)."""
    h, w = image.shape[:2]
    in_w, in_h = int(input_size[0]), int(input_size[1])
    im_ratio = float(h) / w
    if im_ratio > float(in_h) / in_w:
        new_h = in_h
        new_w = int(new_h / im_ratio)
    else:
        new_w = in_w
        new_h = int(new_w * im_ratio)
    new_w, new_h = max(new_w, 1), max(new_h, 1)
    canvas = np.zeros((in_h, in_w, 3), np.uint8)
    canvas[:new_h, :new_w] = resize_bilinear(image, (new_w, new_h))
    return canvas, float(new_h) / h


def blob(images: np.ndarray, mean: float, std: float) -> np.ndarray:
    """cv2.dnn.blobFromImage(s)(img, 1/std, size, (mean,)*3, swapRB=True) for images that are already RGB:
    [N, H, W, 3] uint8 -> float32 [N, 3, H, W] = (pixel - mean) / std."""
    from einops import rearrange
    return np.ascontiguousarray(rearrange((np.asarray(images, np.float32) - np.float32(mean)) * np.float32(1.0 / std),
                                          "n h w c -> n c h w"))


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


def input_normalisation(model_path: str, role: str) -> tuple[float, float]:
    """(mean, std) insightface feeds a landmark or recognition model, from the names of its first graph
    nodes (model_zoo/landmark.py and arcface_onnx.py, the same in 0.7.3 and 2.1):

    - a node named Sub* or _minus* AND a node named Mul* or _mul* among the first 8 (the graph
      normalises by itself; mxnet-converted models) -> (0.0, 1.0): raw 0..255 pixels;
    - landmark models only: a node named exactly 'bn_data' among the first 3 (mxnet networks that
      start with a BatchNorm on the input) -> (0.0, 1.0) too;
    - otherwise (127.5, 128.0) for landmark models and (127.5, 127.5) for recognition models.

    The real 1k3d68.onnx gets (0.0, 1.0) (insightface logs it as "landmark_3d_68 ... 0.0 1.0"; its graph
    most likely starts with mxnet's 'bn_data'); w600k_r50 and glintr100 get (127.5, 127.5).
    """
    names = first_node_names(model_path, 8)
    sub = any(n.startswith(("Sub", "_minus")) for n in names)
    mul = any(n.startswith(("Mul", "_mul")) for n in names)
    if role == "landmark_3d_68" and "bn_data" in names[:3]:
        sub = mul = True
    if sub and mul:
        return 0.0, 1.0
    return (127.5, 128.0) if role == "landmark_3d_68" else (127.5, 127.5)


# ------------------------------------------------------------------------------------ models
class _OnnxModel:
    def __init__(self, path: str, session):
        self.path, self.session = path, session
        self.input_name = session.get_inputs()[0].name
        self.input_shape = session.get_inputs()[0].shape
        self.output_names = [o.name for o in session.get_outputs()]


class SCRFD(_OnnxModel):
    """Face detector (scrfd_10g_bnkps, det_10g): scores, boxes and 5 keypoints as distances from anchor
    centres per stride, decoded exactly as insightface's SCRFD.detect (2.1; 0.7.3's RetinaFace class is
    the same apart from the order of exactly tied scores)."""

    nms_threshold = 0.4        # insightface's nms_thresh (FaceAnalysis never changes it)

    def __init__(self, path, session):
        super().__init__(path, session)
        n = len(self.output_names)
        layouts = {6: (3, False), 9: (3, True), 10: (5, False), 15: (5, True)}
        if n not in layouts:
            raise FaceAnalysisError(f"{Path(path).name} has {n} outputs; not an SCRFD detector (6, 9, 10 or 15)")
        self.levels, self.use_kps = layouts[n]
        self.strides = [8, 16, 32] if self.levels == 3 else [8, 16, 32, 64, 128]
        self.num_anchors = 2 if self.levels == 3 else 1
        self.batched = len(session.get_outputs()[0].shape) == 3
        self._centres = {}

    def _anchor_centres(self, h: int, w: int, stride: int) -> np.ndarray:
        """[h * w * anchors, 2] (x * stride, y * stride), rows y-major, each centre repeated per anchor."""
        key = (h, w, stride)
        if key not in self._centres:
            ys, xs = np.mgrid[:h, :w]
            c = (np.stack([xs, ys], -1).astype(np.float32) * stride).reshape(-1, 2)
            self._centres[key] = np.repeat(c, self.num_anchors, axis=0)
        return self._centres[key]

    def detect(self, image: np.ndarray, input_size: tuple[int, int], threshold: float):
        """insightface's detect(img, input_size, max_num=0): (dets [N, 5] float32 = x1, y1, x2, y2, score,
        kps [N, 5, 2] float32) in `image` pixels (not clipped), best score first after NMS."""
        canvas, det_scale = detector_input(image, input_size)
        outs = self.session.run(self.output_names, {self.input_name: blob(canvas[None], 127.5, 128.0)})
        if self.batched:
            outs = [o[0] for o in outs]
        in_h, in_w = canvas.shape[:2]
        scores, boxes, kpss = [], [], []
        for i, stride in enumerate(self.strides):
            centres = self._anchor_centres(in_h // stride, in_w // stride, stride)
            sc = np.asarray(outs[i]).reshape(-1, 1)
            if sc.shape[0] != centres.shape[0]:
                raise FaceAnalysisError(f"{Path(self.path).name}: {sc.shape[0]} scores at stride {stride}, expected "
                                        f"{centres.shape[0]}; is this an SCRFD model?")
            keep = np.where(sc >= threshold)[0]
            d = np.asarray(outs[i + self.levels]).reshape(-1, 4)[keep] * stride
            c = centres[keep]
            scores.append(sc[keep])
            boxes.append(np.stack([c[:, 0] - d[:, 0], c[:, 1] - d[:, 1], c[:, 0] + d[:, 2], c[:, 1] + d[:, 3]], -1))
            if self.use_kps:
                k = np.asarray(outs[i + 2 * self.levels]).reshape(-1, 10)[keep] * stride
                kpss.append(c[:, None, :] + k.reshape(-1, 5, 2))
        scores = np.vstack(scores)
        order = np.argsort(-scores.ravel(), kind="stable")
        pre_det = np.hstack([np.vstack(boxes) / det_scale, scores]).astype(np.float32, copy=False)[order]
        keep = nms(pre_det, self.nms_threshold)
        kps = (np.vstack(kpss) / det_scale)[order][keep].astype(np.float32) if self.use_kps else None
        return pre_det[keep], kps


class Landmark3D68(_OnnxModel):
    """68 landmarks (x, y, z) from a 192x192 crop around the face box (1k3d68), as insightface's Landmark.get."""

    def __init__(self, path, session):
        super().__init__(path, session)
        self.size = int(self.input_shape[2])
        self.mean, self.std = input_normalisation(path, "landmark_3d_68")

    def landmarks(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        """[68, 3] float32 in image pixels (z scaled like x and y, towards the camera)."""
        x1, y1, x2, y2 = (np.float32(v) for v in box[:4])
        cx, cy = float((x2 + x1) / 2), float((y2 + y1) / 2)
        s = self.size / (float(max(x2 - x1, y2 - y1)) * 1.5)
        half = self.size // 2
        M = np.array([[s, 0.0, self.size / 2 - cx * s], [0.0, s, self.size / 2 - cy * s]])
        crop = warp_affine(image, M, (self.size, self.size))
        pred = self.session.run(self.output_names[:1], {self.input_name: blob(crop[None], self.mean, self.std)})[0][0]
        pred = np.asarray(pred, np.float32).reshape(-1, 3)[-68:].copy()
        pred[:, :2] = (pred[:, :2] + 1) * half                 # [-1, 1] -> crop pixels
        pred[:, 2] *= half
        # back to the image (insightface's trans_points3d): x, y through the inverse of M, z times its scale
        inv = np.linalg.inv(np.vstack([M, [0.0, 0.0, 1.0]]))[:2]
        out = np.empty_like(pred)
        out[:, :2] = pred[:, :2].astype(np.float64) @ inv[:, :2].T + inv[:, 2]
        out[:, 2] = pred[:, 2] * np.sqrt(inv[0, 0] ** 2 + inv[0, 1] ** 2)
        return out


class ArcFace(_OnnxModel):
    """Identity embedding of the 5-point-aligned crop (112x112: w600k_r50, glintr100), as ArcFaceONNX.get."""

    def __init__(self, path, session):
        super().__init__(path, session)
        self.size = int(self.input_shape[2])
        self.mean, self.std = input_normalisation(path, "recognition")

    def aligned_crop(self, image: np.ndarray, kps: np.ndarray) -> np.ndarray:
        return norm_crop(image, kps, self.size)

    def raw_embedding(self, image: np.ndarray, kps: np.ndarray) -> np.ndarray:
        """The model's output [D] float32 as insightface's face.embedding (not normalised)."""
        crop = self.aligned_crop(image, kps)
        v = self.session.run(self.output_names[:1], {self.input_name: blob(crop[None], self.mean, self.std)})[0][0]
        return np.asarray(v, np.float32).reshape(-1)

    def embed(self, image: np.ndarray, kps: np.ndarray) -> np.ndarray:
        """Unit-norm embedding [D] float32 (cosine similarity is unchanged by the normalisation)."""
        v = self.raw_embedding(image, kps)
        return v / max(float(np.linalg.norm(v)), 1e-12)


def _role(session) -> str:
    """detector / landmark_3d_68 / recognition / other, by model_zoo's routing rules (in its order)."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    shape = inputs[0].shape
    if len(outputs) >= 5:
        return "detector"
    hw = list(shape[2:4]) if len(shape) == 4 else [None, None]
    if hw == [192, 192]:
        out = outputs[0].shape
        return "landmark_3d_68" if len(out) == 2 and out[1] == 3309 else "other"   # 2d106det is not used
    if hw == [96, 96]:
        return "other"                                                             # genderage
    if len(inputs) == 2 and hw == [128, 128]:
        return "other"                                                             # inswapper
    if hw[0] == hw[1] and isinstance(hw[0], int) and hw[0] >= 112 and hw[0] % 16 == 0:
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
    """insightface model packs on onnxruntime, computing what insightface's FaceAnalysis computes.

    pack: folder name under <model_dir>/models/ (antelopev2, buffalo_l); model_dir: the insightface
    root (ComfyUI: models/insightface); provider: "cpu", "cuda" or "auto" (CUDA when onnxruntime
    offers it); det_size: the square detector input (FaceAnalysis.prepare(det_size=(s, s)); OpenS2V's
    FaceSim uses 320); det_thresh: score threshold; retry: whether ``find_face`` retries once on a
    grey-padded image (the one retry policy, see faces.base).
    """

    name = "insightface"
    embedding_dim = 512

    def __init__(self, pack: str = "antelopev2", model_dir=None, provider: str = "auto", det_size: int = 640,
                 det_thresh: float = 0.5, retry: bool = True):
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise FaceAnalysisError(f"the insightface face backend needs onnxruntime ({e}); {_ORT_FIX}") from None
        check_choice(provider, PROVIDERS, "provider")
        det_size = int(det_size)
        if det_size < 64 or det_size % 32:
            raise InputError(f"det_size must be a multiple of 32 and at least 64, got {det_size}")
        if not 0.0 < float(det_thresh) < 1.0:
            raise InputError(f"det_thresh must be between 0 and 1, got {det_thresh}")
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
        for path in sorted(self.pack_dir.glob("*.onnx")):      # FaceAnalysis: sorted files, first of each role
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

    def analyze(self, image: np.ndarray, embed: bool = True) -> list[Face]:
        """FaceAnalysis.get(img): every face the detector keeps, in its order, with landmarks, pose
        (insightface's `pose` = pitch, yaw, roll, see faces.pose) and the ArcFace embedding."""
        img = as_rgb_uint8(image)
        dets, kpss = self.detector.detect(img, (self.det_size, self.det_size), self.det_thresh)
        faces = []
        for det, kps in zip(dets, kpss):
            box = det[:4].astype(np.float32)
            lm = None
            if self.landmark is not None:
                lm = self.landmark.landmarks(img, box)
                yaw, pitch, roll = pose_from_landmarks3d(lm)
            else:
                yaw, pitch, roll = pose_from_kps5(kps)
            face = Face(bbox=box, kps=np.asarray(kps, np.float32), det_score=float(det[4]),
                        yaw=yaw, pitch=pitch, roll=roll, landmarks=lm)
            if embed:
                face.embedding = self.recognition.embed(img, kps)
            faces.append(face)
        return faces

    def embed_face(self, image: np.ndarray, face: Face) -> np.ndarray:
        """Identity embedding [512] (unit norm) of a face found by analyze(..., embed=False)."""
        return self.recognition.embed(as_rgb_uint8(image), face.kps)
