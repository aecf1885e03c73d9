"""Custom socket types shared by the pack's nodes."""
from comfy_api.latest import io

# a mv2id_core.faces.FaceAnalyzer instance (from "Mv2ID Face Analyzer")
FaceAnalyzer = io.Custom("MV2ID_FACE_ANALYZER")
# a dict describing how reference frames were packed (from "Mv2ID Reference Conditioning")
ReferenceLayout = io.Custom("MV2ID_REFERENCE_LAYOUT")
