"""Custom socket types shared by the pack's nodes."""
from comfy_api.latest import io

# a mv2id_core.faces.FaceAnalyzer instance (from "Mv2ID Face Analyzer")
FaceAnalyzer = io.Custom("MV2ID_FACE_ANALYZER")
# {"num_refs": n}: how many reference frames "Mv2ID Reference Conditioning" packed (what Mv2ID RD-RoPE checks)
ReferenceLayout = io.Custom("MV2ID_REFERENCE_LAYOUT")
