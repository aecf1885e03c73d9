"""The server harness itself: it never leaves a process or a port behind, and the pack loads
even when the optional face libraries are missing."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

import hostkit


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
    server = hostkit.ComfyServer(host_config, tmp_path / "base", extra_args=["--disable-all-custom-nodes"])
    with pytest.raises(RuntimeError, match="boom"):
        with server:
            assert server.alive()
            pid, port = server.proc.pid, server.port
            raise RuntimeError("boom")
    assert _gone(pid)
    assert not hostkit.port_is_open(port)


def test_pack_loads_without_optional_face_libraries(host_config, tmp_path):
    blockers = Path(__file__).resolve().parent / "blockers"
    server = hostkit.ComfyServer(host_config, tmp_path / "base", extra_env={"PYTHONPATH": str(blockers)})
    with server:
        info = server.object_info()
        log = server.log_path.read_text(errors="replace")
    assert "Mv2IDReferenceConditioning" in info and "Mv2IDSampler" in info, log[-3000:]
    assert "IMPORT FAILED" not in log
    assert "blocked by the test" in log or "not installed" in log   # the warning names what is missing
