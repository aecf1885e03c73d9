"""Mv2ID Face Analyzer: loads a face-analysis backend (insightface ONNX packs or offline dlib).

insightface model packs live in <ComfyUI>/models/insightface/models/<pack>/*.onnx. The
"insightface" model folder is registered with ComfyUI's folder_paths, so an
extra_model_paths.yaml entry `insightface: <path>` is searched too.
"""
from __future__ import annotations

import logging
import os

import folder_paths
from comfy_api.latest import io

from mv2id_core.errors import FaceAnalysisError
from mv2id_core.faces import available_backends, backend_names, load_analyzer
from mv2id_core.faces.dlib_backend import DETECTORS
from mv2id_core.faces.insightface_backend import PROVIDERS
from .sockets import FaceAnalyzer
from .utils import Mv2IDNode, check_option, register_model_folder

log = logging.getLogger("Mv2ID")
CATEGORY = "Mv2ID/faces"
FOLDER = "insightface"
STANDARD_PACKS = ("antelopev2", "buffalo_l")


def insightface_roots() -> list[str]:
    return list(folder_paths.get_folder_paths(FOLDER))


def installed_packs() -> list[str]:
    """Pack folders (with at least one .onnx) under <root>/models/ of every insightface root."""
    found = []
    for root in insightface_roots():
        base = os.path.join(root, "models")
        if not os.path.isdir(base):
            continue
        for name in sorted(os.listdir(base)):
            d = os.path.join(base, name)
            if os.path.isdir(d) and any(f.endswith(".onnx") for f in os.listdir(d)) and name not in found:
                found.append(name)
    return found


def pack_root(pack: str) -> str:
    """The insightface root that holds models/<pack>/ (the default root when none does)."""
    roots = insightface_roots()
    for root in roots:
        if os.path.isdir(os.path.join(root, "models", pack)):
            return root
    return roots[0]


register_model_folder(FOLDER, {".onnx"})


class Mv2IDFaceAnalyzer(Mv2IDNode):
    @classmethod
    def define_schema(cls):
        packs = list(dict.fromkeys(list(STANDARD_PACKS) + installed_packs()))
        return io.Schema(
            node_id="Mv2IDFaceAnalyzer",
            display_name="Mv2ID Face Analyzer",
            category=CATEGORY,
            description=(
                "Loads a face analysis backend (face detection with 5 keypoints, head pose, identity "
                "embedding) for Face Views and Identity Score. insightface runs the antelopev2/buffalo_l ONNX "
                "packs with onnxruntime and computes what insightface 2.1's FaceAnalysis computes (the paper's "
                "ArcFace metric; the insightface python package is not needed). dlib runs offline from pip "
                "packages (dlib-bin, face-recognition-models) with a permissive licence. Both report head pose "
                "in insightface's convention. The loaded models stay cached while the settings do not change."),
            inputs=[
                io.Combo.Input("backend", options=backend_names(), default="insightface", tooltip=(
                    "insightface: best detection on turned faces and the paper's ArcFace identity metric; needs "
                    "onnxruntime and a model pack in models/insightface/models/<pack>/. dlib: no model download, "
                    "pip install dlib-bin face-recognition-models.")),
                io.Combo.Input("insightface_pack", options=packs, default=packs[0], tooltip=(
                    "insightface model pack: the folder name under models/insightface/models/ (antelopev2: "
                    "scrfd_10g_bnkps.onnx + glintr100.onnx + 1k3d68.onnx; buffalo_l: det_10g.onnx + "
                    "w600k_r50.onnx + 1k3d68.onnx). Ignored by dlib.")),
                io.Combo.Input("provider", options=list(PROVIDERS), default="auto", tooltip=(
                    "Where insightface runs: auto uses CUDA when onnxruntime-gpu can, else CPU. Face analysis "
                    "is light; cpu keeps all GPU memory for the video model. Ignored by dlib.")),
                io.Int.Input("det_size", default=640, min=160, max=2048, step=32, tooltip=(
                    "Detector input size in pixels: every image is scaled (down or up) to fit it for detection "
                    "only (insightface: the square det size; dlib: the longer side). 640 suits photos; "
                    "OpenS2V-Eval's FaceSim uses 320 with buffalo_l. dlib's detector needs faces of about 80 px "
                    "at this size: raise it (e.g. 1280) for group photos or small faces.")),
                io.Boolean.Input("retry", default=True, tooltip=(
                    "When no face is found, look once more on the image padded by a quarter of its height and "
                    "width with grey, as OpenS2V-Eval's FaceSim does (helps with faces cut by the image edge). "
                    "Face Views and Identity Score both follow this setting; keep it on for OpenS2V's numbers.")),
                io.Combo.Input("dlib_detector", options=list(DETECTORS), default="hog", tooltip=(
                    "dlib only: hog is fast on CPU (~0.1 s per image) but misses strongly turned faces; cnn "
                    "(MMOD) finds more profile faces and is about 10x slower on CPU.")),
            ],
            outputs=[FaceAnalyzer.Output("analyzer", display_name="analyzer", tooltip=(
                "The loaded face analyzer; connect to Mv2ID Face Views or Mv2ID Identity Score."))],
        )

    @classmethod
    def execute(cls, backend, insightface_pack, provider, det_size, retry, dlib_detector) -> io.NodeOutput:
        check_option(backend, backend_names(), "backend")
        check_option(provider, PROVIDERS, "provider")
        check_option(dlib_detector, DETECTORS, "dlib_detector")
        # the settings go through mv2id_core.faces.analyzer_settings, as the Python API's and mv2id-eval's do
        if backend == "dlib":
            options = {"detector": dlib_detector, "det_size": det_size, "retry": retry}
        else:
            options = {"pack": insightface_pack, "model_dir": pack_root(insightface_pack), "provider": provider,
                       "det_size": det_size, "retry": retry}
        try:
            analyzer = load_analyzer(backend, **options)
        except FaceAnalysisError as e:
            extra = ""
            if backend == "insightface":
                roots = insightface_roots()
                extra = (f" Folders searched for models/{insightface_pack}/: {', '.join(roots)}.")
                if "dlib" in available_backends():
                    extra += " Or switch backend to dlib, which needs no model download."
            raise FaceAnalysisError(f"Mv2ID Face Analyzer: {e}{extra}") from None
        log.info("[Mv2ID] face analyzer ready: %s", analyzer.describe())
        return io.NodeOutput(analyzer)


NODES = [Mv2IDFaceAnalyzer]
