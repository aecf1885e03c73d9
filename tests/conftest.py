"""Shared fixtures: one real ComfyUI server per test session (tests marked `server`).

The server runs headless on 127.0.0.1 at a free port with its own temporary base folder
(custom_nodes -> this pack + tests/comfy_test_nodes; models from the tiny-model folder) and
is always stopped, also when tests fail or the session is interrupted.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
for p in (ROOT, ROOT / "tools", ROOT / "tests"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import comfy_server  # noqa: E402

# Tests that import ComfyUI in-process (training, the RD-RoPE patch) find it the way a user's
# COMFYUI_PATH would be found: through MV2ID_COMFYUI, set here from the host under test. No host
# set up is an error, not a skip: a missing host must not turn into a green run.
_HOST = comfy_server.HostConfig.from_env()
os.environ.setdefault("MV2ID_COMFYUI", str(_HOST.comfyui))
os.environ.setdefault("MV2ID_TINY_MODELS", str(_HOST.tiny_models))

DATA = Path(__file__).resolve().parent / "data"


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "comfy" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.server)


@pytest.fixture(scope="session")
def host_config() -> comfy_server.HostConfig:
    return _HOST


@pytest.fixture(scope="session")
def comfy(host_config, tmp_path_factory):
    base = tmp_path_factory.mktemp("comfy-base")
    server = comfy_server.ComfyServer(host_config, base)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def healthy(comfy):
    """Use in tests that send bad input: afterwards the server must still answer."""
    yield comfy
    assert comfy.alive(), f"ComfyUI server is no longer healthy:\n{comfy.log_tail()}"
