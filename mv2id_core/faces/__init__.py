"""Face analysis backends behind one interface (see base.py for the conventions).

    analyzer = load_analyzer("dlib")                    # offline, permissive licence
    analyzer = load_analyzer("insightface", pack="antelopev2", model_dir="/path/to/models/insightface")
    faces = analyzer.analyze(rgb_uint8_image)           # every face, in the detector's order
    face, padded = find_face(analyzer, rgb_uint8_image) # the pack's one face choice (OpenS2V's)

Backends import their libraries only when loaded, so this package imports without them.
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import math
import os
import platform
import sys

from ..errors import FaceAnalysisError, InputError
from .base import Face, FaceAnalyzer, cosine, find_face, largest_face


def prebuilt_dlib(sys_platform: str = sys.platform, machine: str = platform.machine(),
                  python: tuple = sys.version_info[:2], release: str = platform.release()) -> bool:
    """Whether dlib-bin has a prebuilt wheel for this platform, i.e. whether requirements.txt installs it here:
    Windows x86_64, Linux x86_64 / aarch64, macOS arm64 from macOS 14 (Darwin 23) on, or with Python 3.12 and
    older below it. The same rule as dlib-bin's environment marker in requirements.txt (tests/test_packaging.py
    checks the two agree on every platform tools/check_wheels.py checks; tests/test_check_wheels.py that the
    wheels exist)."""
    if sys_platform == "win32":
        return machine == "AMD64"
    if sys_platform.startswith("linux"):
        return machine in ("x86_64", "aarch64")
    if sys_platform == "darwin" and machine == "arm64":
        darwin = release.split(".")[0]
        return tuple(python) < (3, 13) or (darwin.isdigit() and int(darwin) >= 23)
    return False


def _dlib_install() -> str:
    """How to get the dlib backend here; where no prebuilt dlib exists, which backend to use instead."""
    if prebuilt_dlib():
        return "pip install dlib-bin face-recognition-models"
    system = f"macOS {platform.mac_ver()[0]}" if sys.platform == "darwin" else f"{platform.system()} {platform.release()}"
    here = f"{system} {platform.machine()}, Python {sys.version_info[0]}.{sys.version_info[1]}"
    return (f"pip install dlib face-recognition-models (dlib-bin has no prebuilt wheel for this platform, {here}, so "
            f"dlib is built from source: it needs CMake and a C++ compiler). Or use the insightface backend instead: "
            f"pip install onnxruntime and put a model pack in models/insightface/models/<pack>/")


# backend name -> (module, class, python modules it needs, how to install them)
_BACKENDS = {
    "dlib": (".dlib_backend", "DlibAnalyzer", ("dlib", "face_recognition_models"), _dlib_install),
    "insightface": (".insightface_backend", "InsightFaceAnalyzer", ("onnxruntime",),
                    "pip install onnxruntime (or onnxruntime-gpu, not both)"),
}


def _install(backend: str) -> str:
    fix = _BACKENDS[backend][3]
    return fix() if callable(fix) else fix


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
    for name, (_, _, mods, _) in _BACKENDS.items():
        missing = _missing(mods)
        if missing:
            out[name] = (missing, _install(name))
    return out


def _backend_class(backend: str):
    key = str(backend).strip().lower()
    if key not in _BACKENDS:
        raise InputError(f"unknown face backend {backend!r}; choose one of: {', '.join(_BACKENDS)}")
    module, cls_name, _, _ = _BACKENDS[key]
    return key, getattr(importlib.import_module(module, __name__), cls_name)


TRUE_WORDS, FALSE_WORDS = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def _setting(name: str, value, default, backend: str):
    """One option value as the type of the backend's default for it; InputError naming the option."""
    def bad(expected: str):
        return InputError(f"option {name} of the {backend} face backend must be {expected} (default {default!r}), "
                          f"got {value!r}.")
    text = value.strip() if isinstance(value, str) else None
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if text is not None and text.lower() in TRUE_WORDS + FALSE_WORDS:
            return text.lower() in TRUE_WORDS
        raise bad("true or false")
    if isinstance(default, (int, float)):
        kind = int if isinstance(default, int) else float
        if isinstance(value, bool) or not (isinstance(value, (int, float)) or text):
            raise bad("a whole number" if kind is int else "a number")
        try:
            number = float(text if text is not None else value)
        except ValueError:
            raise bad("a whole number" if kind is int else "a number") from None
        if not math.isfinite(number) or (kind is int and number != int(number)):
            raise bad("a whole number" if kind is int else "a finite number")
        return kind(number)
    if default is None:                                   # a path (model_dir): None or text
        if value is None or (text is not None and text.lower() in ("", "none")):
            return None
        if isinstance(value, (str, os.PathLike)):
            return value
        raise bad("a folder path")
    if not isinstance(value, str):
        raise bad("text")
    return text


def analyzer_settings(backend: str, **options) -> dict:
    """The one place where options become a face backend's settings (the Face Analyzer node, the Python API
    `load_analyzer` and `mv2id-eval --option KEY=VALUE` all go through it): every option must be one of the
    backend's settings, and its value is converted to that setting's type; text as a command line gives it
    is accepted ("320", "false", "none"). Values the backend checks itself (ranges, choices) are checked
    when it loads. Returns {setting: value}; InputError names a bad option and what it expects."""
    key, cls = _backend_class(backend)
    params = {n: p.default for n, p in inspect.signature(cls.__init__).parameters.items() if n != "self"}
    out = {}
    for name, value in options.items():
        if name not in params:
            raise InputError(f"unknown option {name!r} for the {key} face backend; its options are: "
                             f"{', '.join(params)}.")
        out[name] = _setting(name, value, params[name], key)
    return out


def load_analyzer(backend: str, **options) -> FaceAnalyzer:
    """A ready FaceAnalyzer. backend: "dlib" or "insightface"; options are its settings (analyzer_settings).

    Raises FaceAnalysisError (what to install / which file goes where) when a library or model
    file is missing, InputError for an unknown backend or a bad option value.
    """
    key, cls = _backend_class(backend)
    settings = analyzer_settings(key, **options)
    missing = _missing(_BACKENDS[key][2])
    if missing:
        raise FaceAnalysisError(f"the {key!r} face backend needs {', '.join(missing)}, which is not installed. "
                                f"Install it with: {_install(key)}")
    return cls(**settings)


__all__ = ["Face", "FaceAnalyzer", "cosine", "find_face", "largest_face", "load_analyzer", "analyzer_settings",
           "available_backends",
           "backend_names", "missing_libraries", "prebuilt_dlib"]
