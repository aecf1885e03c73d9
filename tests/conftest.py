"""Shared fixtures. The library's tests need no ComfyUI; tests that need a ComfyUI host carry the
`server` marker (set here for every test that uses a host fixture) and get one real ComfyUI
server per test session, or ComfyUI's modules in-process.

The server runs headless on 127.0.0.1 at a free port with its own temporary base folder
(custom_nodes -> this pack + tests/comfy_test_nodes; models from the tiny-model folder) and
is always stopped, also when tests fail or the session is interrupted.

Without a host (a machine with only `pip install -e .`) the host tests are skipped with the reason;
`tools/dev.sh test` sets MV2ID_REQUIRE_HOST=1, so there a missing host is an error, never a green run.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

import comfy_server
import mv2id_core

# shared fixtures of the face tests (dlib_an, ...)
pytest_plugins = ["faces_helpers"]

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
# fixtures that need a ComfyUI host; a test using any of them (directly or through another fixture)
# is marked `server`
HOST_FIXTURES = {"host_config", "comfy", "healthy", "comfy_modules"}


def _find_host() -> tuple[comfy_server.HostConfig | None, str]:
    try:
        return comfy_server.HostConfig.from_env(), ""
    except RuntimeError as e:
        return None, str(e)


HOST, NO_HOST_REASON = _find_host()
if HOST is not None:
    # Tests that import ComfyUI in-process (training, the RD-RoPE patch) find it the way a user's
    # COMFYUI_PATH would be found: through MV2ID_COMFYUI, set here from the host under test.
    os.environ.setdefault("MV2ID_COMFYUI", str(HOST.comfyui))
    os.environ.setdefault("MV2ID_TINY_MODELS", str(HOST.tiny_models))


def pytest_sessionstart(session):
    # one import name: the library under test is this checkout's, as installed (pip install -e .)
    here = (ROOT / "mv2id_core").resolve()
    if Path(mv2id_core.__file__).resolve().parent != here:
        raise pytest.UsageError(f"mv2id_core is imported from {Path(mv2id_core.__file__).parent}, not from this "
                                f"checkout ({here}): run `pip install -e {ROOT}` in this Python")
    if HOST is None and os.environ.get("MV2ID_REQUIRE_HOST") == "1":
        raise pytest.UsageError(f"MV2ID_REQUIRE_HOST=1 but {NO_HOST_REASON}")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HOST_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.server)
        if HOST is None and item.get_closest_marker("server"):
            item.add_marker(pytest.mark.skip(reason=f"needs a ComfyUI host: {NO_HOST_REASON}"))


@pytest.fixture(scope="session")
def host_config() -> comfy_server.HostConfig:
    return HOST


@pytest.fixture(scope="session")
def comfy_modules(host_config):
    """ComfyUI's `comfy` package imported in this process (CPU mode without a GPU)."""
    from mv2id_train import comfy_env

    return comfy_env.import_comfy()


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
