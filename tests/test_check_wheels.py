"""tools/check_wheels.py: every requirement installs from a wheel on every platform and Python ComfyUI runs on.

Three layers: the resolution rules on synthetic file lists (no network); the whole tool over HTTP against a local
index served here (PEP 691 JSON and PEP 503 HTML pages, METADATA by range requests, from a server that ignores
Range, or beside the wheel as PEP 658 says; a missing project; a registry that never answers or trickles bytes:
one line and exit 2 within the time limit); and the real registry (pip's configured index), skipped with the
reason when it cannot be reached.
"""
from __future__ import annotations

import functools
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import check_wheels as CW

ROOT = Path(__file__).resolve().parent.parent
OLD_DLIB_LINE = "dlib-bin>=19.24"      # the unconditional requirement of earlier releases
EVERYWHERE = "; ".join(f"{p.name} / Python {CW.PYTHONS[0]}-{CW.PYTHONS[-1]}" for p in CW.PLATFORMS)
# where ComfyUI's own requirements install from wheels: there dependencies of dependencies are followed too
NEWER = "; ".join(f"{p.name} / Python {CW.PYTHONS[0]}-{CW.PYTHONS[-1]}" for p in CW.PLATFORMS if not p.older)


def _check_wheels(*args, timeout=200) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "tools" / "check_wheels.py"), *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


# ----------------------------------------------------------------------------- the resolution rules
class _FakeRegistry(CW.Registry):
    """Files as the index would list them (the resolution rules, without the network)."""

    def __init__(self, files: dict[str, list[tuple]], requires: dict | None = None):
        super().__init__("https://index.invalid/simple")
        self._files = {k: tuple(CW._file(n, f"https://files.invalid/{n}", rp, y) for n, rp, y in v)
                       for k, v in files.items()}
        self._deps = requires or {}

    def files(self, project):
        return self._files[project]

    def requires(self, project, wheel):
        return tuple(self._deps.get(project, ()))


def _outcomes(registry, *lines, platform="Linux x86_64", python="3.12"):
    p = next(p for p in CW.PLATFORMS if p.name == platform)
    return {o.requirement: o.problem or o.installed
            for o in CW.check_platform(registry, [Requirement(l) for l in lines], p, python)}


def test_pip_picks_the_newest_release_even_when_only_its_source_fits():
    """pip prefers a newer source archive to an older wheel: the check must see the build, not the old wheel."""
    reg = _FakeRegistry({"lib": [("lib-1.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", None, False),
                                 ("lib-2.0.tar.gz", None, False),
                                 ("lib-2.0-cp312-cp312-macosx_14_0_arm64.whl", None, False),
                                 ("lib-3.0-cp312-cp312-manylinux_2_28_x86_64.whl", None, True),       # yanked
                                 ("lib-3.1-cp313-cp313-manylinux_2_28_x86_64.whl", ">=3.13", False),
                                 ("lib-4.0rc1-cp312-cp312-manylinux_2_28_x86_64.whl", None, False)]})
    assert _outcomes(reg, "lib>=1.0") == {"lib>=1.0": "no wheel: pip would build lib 2.0 from lib-2.0.tar.gz (needs a "
                                                      "compiler and the library's build tools)"}
    assert _outcomes(reg, "lib>=1.0", python="3.13") == {
        "lib>=1.0": "lib 3.1 (lib-3.1-cp313-cp313-manylinux_2_28_x86_64.whl)"}
    assert _outcomes(reg, "lib>=1.0", platform="macOS 14 arm64") == {
        "lib>=1.0": "lib 2.0 (lib-2.0-cp312-cp312-macosx_14_0_arm64.whl)"}
    assert _outcomes(reg, "lib>=4.0rc1") == {"lib>=4.0rc1": "lib 4.0rc1 (lib-4.0rc1-cp312-cp312-manylinux_2_28_x86_64.whl)"}


def test_markers_dependencies_and_older_platforms():
    reg = _FakeRegistry({"a": [("a-1.0-py3-none-any.whl", None, False)],
                         "b": [("b-1.0-cp312-abi3-win_amd64.whl", None, False)],
                         "av": [("av-1.0.tar.gz", None, False)],
                         "c": [("c-1.0-cp312-cp312-macosx_14_0_arm64.whl", None, False)]},
                        {"a": ["b>=1; sys_platform == 'win32'", "c; extra == 'test'"]})
    assert _outcomes(reg, "a") == {"a": "a 1.0 (a-1.0-py3-none-any.whl)"}                 # b only on Windows
    assert _outcomes(reg, "a", platform="Windows x86_64") == {
        "a": "a 1.0 (a-1.0-py3-none-any.whl)", "b>=1 (needed by a)": "b 1.0 (b-1.0-cp312-abi3-win_amd64.whl)"}
    # a marker that leaves out a platform where a wheel installs is reported too
    assert _outcomes(reg, "c; sys_platform != 'darwin'", platform="macOS 14 arm64") == {
        "c": "excluded by its environment marker, but c-1.0-cp312-cp312-macosx_14_0_arm64.whl installs here: widen "
             "the marker"}
    # on macOS 11 (older than ComfyUI's own wheels need) what ComfyUI itself requires is not checked
    assert _outcomes(reg, "av", platform="macOS 11 arm64") == {}
    assert _outcomes(reg, "av", platform="macOS 14 arm64")["av"].startswith("no wheel: pip would build av 1.0")


# ----------------------------------------------------------------------------- the tool against a local index
def _wheel(name: str, version: str, requires: list[str]) -> bytes:
    """A wheel whose METADATA sits before 512 KB of incompressible data, as a real wheel's sits after its code:
    reading it must not download the whole file."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(f"{name}/__init__.py", "")
        z.writestr(f"{name}/data.bin", os.urandom(512 * 1024))
        z.writestr(f"{name}-{version}.dist-info/METADATA", "Metadata-Version: 2.1\nName: {}\nVersion: {}\n{}".format(
            name, version, "".join(f"Requires-Dist: {r}\n" for r in requires)))
    return buf.getvalue()


class _Index:
    """A package index on 127.0.0.1: `lib` 1.0 (a pure-Python wheel needing dep>=1, and yanked lib 9.0), `dep` 2.0
    (a source archive only). Pages as PEP 691 JSON or PEP 503 HTML; wheel METADATA through range requests, from a
    server that ignores Range (the whole file), or beside the wheel (PEP 658)."""

    def __init__(self, style: str = "json", ranges: bool = True, pep658: bool = False):
        self.style, self.ranges, self.pep658 = style, ranges, pep658
        self.wheel = _wheel("lib", "1.0", ["dep>=1", "tests-only; extra == 'test'"])
        self.sent = 0                 # bytes of files served
        index = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_HEAD(self):
                index.answer(self, head=True)

            def do_GET(self):
                index.answer(self, head=False)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/simple"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def files(self, project):
        return {"lib": [("lib-1.0-py3-none-any.whl", self.wheel, False), ("lib-9.0-py3-none-any.whl", b"", True)],
                "dep": [("dep-2.0.tar.gz", b"sdist", False)]}.get(project)

    def page(self, project) -> tuple[str, bytes]:
        files = self.files(project)
        if self.style == "json":
            return "application/vnd.pypi.simple.v1+json", json.dumps({"meta": {"api-version": "1.1"}, "name": project,
                "files": [{"filename": n, "url": f"../../files/{n}", "hashes": {}, "yanked": y,
                           "core-metadata": self.pep658 and n.endswith(".whl")} for n, _, y in files]}).encode()
        yanked, meta = ' data-yanked=""', ' data-core-metadata="true"'
        links = "".join(f'<a href="../../files/{n}#sha256=00"{yanked if y else ""}'
                        f'{meta if self.pep658 and n.endswith(".whl") else ""}>{n}</a>\n' for n, _, y in files)
        return "text/html", f"<!DOCTYPE html><html><body>\n{links}</body></html>".encode()

    def answer(self, h: BaseHTTPRequestHandler, head: bool):
        parts = h.path.strip("/").split("/")
        status, kind, body = 404, "text/plain", b"not found"
        if parts[0] == "simple" and len(parts) == 2 and self.files(parts[1]) is not None:
            status, (kind, body) = 200, self.page(parts[1])
        elif parts[0] == "files" and len(parts) == 2:
            name = parts[1]
            meta = name.endswith(".metadata") and self.pep658
            blob = {n: b for p in ("lib", "dep") for n, b, _ in self.files(p)}.get(name.removesuffix(".metadata"))
            if blob is not None and meta:
                with zipfile.ZipFile(io.BytesIO(blob)) as z:
                    status, body = 200, z.read("lib-1.0.dist-info/METADATA")
            elif blob is not None and not name.endswith(".metadata"):
                status, kind, body = 200, "application/octet-stream", blob
                rng = h.headers.get("Range")
                if rng and self.ranges and not head:
                    start, end = (int(v) for v in rng.removeprefix("bytes=").split("-"))
                    status, body = 206, blob[start:end + 1]
                    h.send_response(206)
                    h.send_header("Content-Range", f"bytes {start}-{end}/{len(blob)}")
                if not head:
                    self.sent += len(body)
        if status != 206:
            h.send_response(status)
        h.send_header("Content-Type", kind)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if not head:
            h.wfile.write(body)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def local_index(request):
    index = _Index(**getattr(request, "param", {}))
    yield index
    index.close()


@pytest.mark.parametrize("local_index", [dict(style="json"), dict(style="html"), dict(style="json", ranges=False),
                                         dict(style="html", pep658=True), dict(style="json", pep658=True)],
                         indirect=True, ids=["json-ranges", "html-ranges", "server-ignores-range", "html-pep658",
                                             "json-pep658"])
def test_the_tool_follows_a_wheels_dependencies_over_http(local_index, tmp_path):
    """lib installs from its wheel everywhere, but its dependency dep would be built from source: one line names
    dep, who needs it, why and where; exit 1. The extra-only dependency and the yanked release are not followed."""
    req = tmp_path / "requirements.txt"
    req.write_text("lib>=1.0\n")
    p = _check_wheels("--requirements", str(req), "--index-url", local_index.url, "--timeout", "60")
    assert p.returncode == 1, p.stdout + p.stderr
    assert p.stderr.splitlines() == [
        f"check_wheels: dep>=1 (needed by lib): no wheel: pip would build dep 2.0 from dep-2.0.tar.gz (needs a compiler "
        f"and the library's build tools) on {NEWER}"], p.stderr
    summary = json.loads(p.stdout.splitlines()[-1])
    assert summary["platforms"] == 25 and summary["problems"] == 1
    wheel = len(local_index.wheel)
    if local_index.pep658:
        assert local_index.sent == 0, "METADATA served beside the wheel: no byte of the wheel is needed"
    elif local_index.ranges:
        assert local_index.sent < wheel / 4, f"range requests read {local_index.sent} bytes of a {wheel}-byte wheel"
    else:
        assert local_index.sent == wheel, "a server without Range support sends the wheel once (read from memory)"


def test_a_project_missing_from_the_index_is_named(local_index, tmp_path):
    req = tmp_path / "requirements.txt"
    req.write_text("dep>=1\nnot-published>=1\n")
    p = _check_wheels("--requirements", str(req), "--index-url", local_index.url, "--verbose", "--timeout", "60")
    assert p.returncode == 1, p.stdout + p.stderr
    assert (f"check_wheels: not-published>=1: not on the index ({local_index.url}/not-published/ answered 404 Not "
            f"Found): check the name on {EVERYWHERE}") in p.stderr.splitlines(), p.stderr


def test_an_index_url_that_is_no_index_is_one_clear_line(local_index, tmp_path):
    req = tmp_path / "requirements.txt"
    req.write_text("dep>=1\n")
    url = local_index.url.removesuffix("/simple")
    p = _check_wheels("--requirements", str(req), "--index-url", url, "--timeout", "60")
    assert p.returncode == 2
    assert p.stderr == (f"check_wheels: error: the package registry at {url} could not be asked ({url} has a page for "
                        f"none of dep: is it a package index's Simple API address (such as https://pypi.org/simple)?); "
                        f"nothing was checked\n")


def test_an_unreachable_registry_is_one_clear_line():
    p = _check_wheels("--index-url", "http://127.0.0.1:9/simple", timeout=60)
    assert p.returncode == 2
    assert p.stderr.startswith("check_wheels: error: the package registry at http://127.0.0.1:9/simple could not be "
                               "asked (cannot read http://127.0.0.1:9/simple/"), p.stderr
    assert p.stderr.endswith("); nothing was checked\n") and p.stderr.count("\n") == 1, p.stderr


@pytest.fixture
def silent_server():
    """A registry that accepts connections and then says nothing (mode "mute") or trickles one byte of an HTTP
    status line every 0.2 s forever (mode "trickle": each read succeeds, so only the check's time limit ends it)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    state = {"mode": "mute", "stop": False}

    def serve(conn):
        with conn:
            while not state["stop"]:
                if state["mode"] == "trickle":
                    try:
                        conn.sendall(b"H")
                    except OSError:
                        return
                time.sleep(0.2)

    def accept():
        while not state["stop"]:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()
    threading.Thread(target=accept, daemon=True).start()
    yield state, f"http://127.0.0.1:{sock.getsockname()[1]}/simple"
    state["stop"] = True
    sock.close()


@pytest.mark.parametrize("mode", ["mute", "trickle"])
def test_a_registry_that_does_not_answer_ends_the_check_within_its_time_limit(silent_server, mode):
    state, url = silent_server
    state["mode"] = mode
    start = time.monotonic()
    p = _check_wheels("--index-url", url, "--timeout", "3", timeout=60)
    took = time.monotonic() - start
    assert p.returncode == 2, p.stdout + p.stderr
    assert took < 20, f"the check took {took:.1f} s with --timeout 3"
    first = f"check_wheels: error: the package registry at {url} "
    if mode == "mute":          # each request's own limit (at most the check's) ends it
        assert p.stderr.startswith(first + f"could not be asked (cannot read {url}/"), p.stderr
        assert p.stderr.endswith(": timed out); nothing was checked\n"), p.stderr
    else:                       # bytes keep coming: the check's time limit ends it
        assert p.stderr == first + "did not answer within the check's time limit of 3 s; nothing was checked\n"


def test_bad_arguments_are_one_line(tmp_path):
    p = _check_wheels("--requirements", str(tmp_path / "missing.txt"))
    assert p.returncode == 2 and p.stderr.splitlines()[-1] == (
        f"check_wheels.py: error: cannot read --requirements {tmp_path / 'missing.txt'}: No such file or directory")
    bad = tmp_path / "bad.txt"
    bad.write_text("numpy>=>1\n")
    p = _check_wheels("--requirements", str(bad))
    assert p.returncode == 2 and p.stderr.splitlines()[-1].startswith(
        f"check_wheels.py: error: --requirements {bad}: line 1, 'numpy>=>1', is not a requirement (Expected "), p.stderr
    for bad in ("nan", "inf", "0", "-5"):
        p = _check_wheels("--timeout", bad)
        assert p.returncode == 2 and p.stderr.splitlines()[-1] == (
            f"check_wheels.py: error: --timeout must be a positive number of seconds, got {float(bad):g}")


# ----------------------------------------------------------------------------- the real registry
@functools.cache
def _registry_problem() -> str:
    """'' when pip's configured index answers within 15 s, else why not (asked once per test session)."""
    try:
        CW.Registry(CW.index_url(), timeout=15, budget=15).files("einops")
        return ""
    except CW.RegistryError as e:
        return str(e)


def _registry_or_skip():
    if _registry_problem():
        pytest.skip(f"the package registry cannot be reached, so the wheel check cannot run: {_registry_problem()}")


def test_every_requirement_installs_from_wheels_everywhere_comfyui_runs():
    """requirements.txt against the registry's real files: Windows x86_64, Linux x86_64 / aarch64, macOS arm64
    (14, and 11 for the pack's own additions), CPython 3.10-3.14, each chosen wheel's dependencies followed."""
    _registry_or_skip()
    p = _check_wheels("--verbose", "--timeout", "150")
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr
    lines = p.stdout.splitlines()
    summary = json.loads(lines[-1])
    assert summary["problems"] == 0 and summary["platforms"] == 25, lines[-1]
    # dlib is installed wherever a prebuilt wheel exists, and left out (not built) where none does
    for where in ("Windows x86_64 / Python 3.10", "Linux aarch64 / Python 3.14", "macOS 14 arm64 / Python 3.13",
                  "macOS 11 arm64 / Python 3.12"):
        assert any(l.startswith(f"{where}: dlib-bin>=19.24: dlib-bin ") and ".whl" in l for l in lines), where
    for where in ("macOS 11 arm64 / Python 3.13", "macOS 11 arm64 / Python 3.14"):
        assert f"{where}: dlib-bin>=19.24: not installed here (environment marker)" in lines, where


def test_the_check_fails_for_a_requirement_without_a_wheel(tmp_path):
    """The unconditional dlib-bin line of earlier releases has no wheel for macOS arm64 below 14 with Python 3.13
    and 3.14: the check names the requirement, the platforms and why, and exits 1."""
    _registry_or_skip()
    req = tmp_path / "requirements.txt"
    req.write_text("einops>=0.6\n" + OLD_DLIB_LINE + "\n")
    p = _check_wheels("--requirements", str(req), "--timeout", "150")
    assert p.returncode == 1, p.stdout + p.stderr
    assert p.stderr.splitlines() == [
        "check_wheels: dlib-bin>=19.24: no release installs here (no wheel and no source) on macOS 11 arm64 / "
        "Python 3.13, 3.14"], p.stderr
