"""Package metadata written once: requirements.txt (what ComfyUI-Manager installs) lists exactly the
pyproject dependencies except torch (never installed into a user's ComfyUI), and the version lives only in
pyproject.toml (the CHANGELOG's newest entry names it; no second copy in the code); dlib-bin's environment marker
is mv2id_core.faces.prebuilt_dlib's rule on every platform tools/check_wheels.py checks, and where it is false the
log and the Face Analyzer name the other backend."""
from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import check_wheels as CW

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _requirement(line: str) -> tuple[str, str]:
    """'Pillow >= 10.0 ; marker' -> ('pillow', '>=10.0;marker'): the name canonical, spaces dropped."""
    text = line.split("#")[0].replace(" ", "")
    name = re.match(r"[A-Za-z0-9._-]+", text).group(0)
    return re.sub(r"[-_.]+", "-", name).lower(), text[len(name):]


def _requirements_txt() -> dict[str, str]:
    lines = [ln for ln in (ROOT / "requirements.txt").read_text().splitlines() if ln.split("#")[0].strip()]
    return dict(_requirement(ln) for ln in lines)


def test_requirements_txt_is_the_pyproject_dependencies_without_torch():
    declared = dict(_requirement(d) for d in PROJECT["dependencies"])
    assert "torch" in declared, "the library needs torch: declare it in pyproject.toml"
    assert "torch" not in _requirements_txt(), "requirements.txt must never install torch into ComfyUI"
    assert _requirements_txt() == {k: v for k, v in declared.items() if k != "torch"}


def test_the_version_is_written_once():
    version = PROJECT["version"]
    newest = re.search(r"^## (\S+)", (ROOT / "CHANGELOG.md").read_text(), re.M).group(1)
    assert newest == version, f"CHANGELOG's newest entry is {newest}, pyproject.toml says {version}"
    copies = [str(p.relative_to(ROOT)) for d in ("mv2id_core", "mv2id_train", "nodes") for p in (ROOT / d).rglob("*.py")
              if re.search(r"^__version__\s*=", p.read_text(), re.M)] + \
             [f for f in ("__init__.py",) if re.search(r"^__version__\s*=", (ROOT / f).read_text(), re.M)]
    assert copies == [], f"a second copy of the version in {copies}: read it from the package metadata instead"


# ----------------------------------------------------------------------------- installs everywhere ComfyUI runs
# (tools/check_wheels.py itself: tests/test_check_wheels.py)


@pytest.mark.parametrize("platform", CW.PLATFORMS, ids=lambda p: p.name)
@pytest.mark.parametrize("python", CW.PYTHONS)
def test_prebuilt_dlib_is_the_requirement_marker(platform, python):
    """mv2id_core.faces.prebuilt_dlib (what the log and the Face Analyzer say) and the environment marker of
    dlib-bin in requirements.txt (what pip installs) are one rule written twice: they must agree everywhere."""
    from mv2id_core.faces import prebuilt_dlib
    line = next(l for l in (ROOT / "requirements.txt").read_text().splitlines() if l.startswith("dlib-bin"))
    env = platform.environment(python)
    marker = Requirement(line).marker.evaluate(env)
    ours = prebuilt_dlib(env["sys_platform"], env["platform_machine"], tuple(int(v) for v in python.split(".")),
                         env["platform_release"])
    assert marker == ours, (platform.name, python, line)


def test_prebuilt_dlib_elsewhere():
    from mv2id_core.faces import prebuilt_dlib
    assert not prebuilt_dlib("win32", "ARM64", (3, 12), "11")
    assert not prebuilt_dlib("darwin", "x86_64", (3, 12), "22.1.0")
    assert prebuilt_dlib("darwin", "arm64", (3, 13), "24.0.0") and not prebuilt_dlib("darwin", "arm64", (3, 13), "22.6.0")


def test_dlib_backend_needs_no_pkg_resources(monkeypatch):
    """face-recognition-models imports pkg_resources, which setuptools 81+ no longer ships (Python 3.12+ environments
    often have none): the dlib backend finds the model files without importing that package."""
    from mv2id_core.faces import available_backends, load_analyzer
    if "dlib" not in available_backends():
        pytest.skip("dlib / face-recognition-models not installed")
    monkeypatch.setitem(sys.modules, "pkg_resources", None)          # `import pkg_resources` now fails
    monkeypatch.delitem(sys.modules, "face_recognition_models", raising=False)
    with pytest.raises(ImportError):
        import face_recognition_models  # noqa: F401
    monkeypatch.delitem(sys.modules, "face_recognition_models", raising=False)
    analyzer = load_analyzer("dlib", detector="cnn")
    assert analyzer.describe().startswith("dlib (cnn detector")
    assert "face_recognition_models" not in sys.modules


def test_without_prebuilt_dlib_the_message_names_the_other_backend(monkeypatch):
    """Where no dlib wheel exists (requirements.txt then leaves it out), the start-up log line and the Face
    Analyzer's error say to build dlib or to use insightface instead."""
    import mv2id_core.faces as F
    monkeypatch.setattr(F, "prebuilt_dlib", lambda: False)
    monkeypatch.setattr(F, "_missing", lambda mods: list(mods))
    missing, fix = F.missing_libraries()["dlib"]
    assert missing == ["dlib", "face_recognition_models"]
    assert fix.startswith("pip install dlib face-recognition-models (dlib-bin has no prebuilt wheel for this platform, ")
    assert fix.endswith("Or use the insightface backend instead: pip install onnxruntime and put a model pack in "
                        "models/insightface/models/<pack>/")
    with pytest.raises(F.FaceAnalysisError, match=r"needs dlib, face_recognition_models, which is not installed\. "
                                                  r"Install it with: pip install dlib face-recognition-models \(dlib-bin"):
        F.load_analyzer("dlib")
    monkeypatch.setattr(F, "prebuilt_dlib", lambda: True)
    assert F.missing_libraries()["dlib"][1] == "pip install dlib-bin face-recognition-models"
