"""Run a real ComfyUI server headless and talk to it: used by the tests, the demo and the tools.

Nothing here imports ComfyUI; the server runs in its own process (its own process group,
so it and any children are always stopped together) and is reached over HTTP on 127.0.0.1.

    host = HostConfig.from_env()            # the host tools/setup_host.py installed (or COMFYUI_PATH)
    with ComfyServer(host, base_dir) as srv:
        pid = srv.queue(api_prompt)
        entry = srv.wait(pid)
        files = srv.output_files(entry)
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACK_NAME = "ComfyUI-Mv2ID"
TEST_NODES_DIR = ROOT / "tests" / "comfy_test_nodes"
# model folders the server reads from the tiny test models, and from the host's own models/ (real
# weights a developer put there)
TINY_MODEL_FOLDERS = ("diffusion_models", "vae", "loras", "frame_interpolation")
HOST_MODEL_FOLDERS = ("diffusion_models", "unet", "vae", "text_encoders", "clip", "loras", "upscale_models",
                      "insightface", "background_removal", "frame_interpolation")


# ----------------------------------------------------------------------------- host discovery
@dataclass
class HostConfig:
    comfyui: Path
    python: str
    tiny_models: Path
    name: str = "custom"
    description: str = ""

    @classmethod
    def from_env(cls) -> "HostConfig":
        """The host tools/setup_host.py installed: MV2ID_* variables (tools/dev.sh exports them), else
        .host/<MV2ID_HOST>/env.sh, else the first installed of the hosts in hosts/hosts.ini."""
        env = dict(os.environ)
        if "MV2ID_COMFYUI" not in env:
            home = Path(env.get("MV2ID_HOST_DIR", ROOT / ".host"))
            names = [env["MV2ID_HOST"]] if env.get("MV2ID_HOST") else ["newest", "oldest", "custom"]
            env_sh = next((home / n / "env.sh" for n in names if (home / n / "env.sh").is_file()), None)
            if env_sh is None:
                raise RuntimeError("No ComfyUI host is set up. Run `python3 tools/setup_host.py` first "
                                   "(or set COMFYUI_PATH to an existing ComfyUI and run it).")
            for line in env_sh.read_text().splitlines():
                if line.startswith("export "):
                    k, _, v = line[len("export "):].partition("=")
                    env[k] = v.strip().strip('"')
        if "MV2ID_COMFYUI" not in env:   # the library environment (hosts.ini source = none)
            raise RuntimeError(f"the environment {env.get('MV2ID_HOST')!r} ({env.get('MV2ID_HOST_DESCRIPTION')}) "
                               f"has no ComfyUI")
        return cls(Path(env["MV2ID_COMFYUI"]), env.get("MV2ID_PYTHON", sys.executable),
                   Path(env["MV2ID_TINY_MODELS"]), env.get("MV2ID_HOST", "custom"),
                   env.get("MV2ID_HOST_DESCRIPTION", ""))

    @property
    def version(self) -> str:
        """ComfyUI's own version string (comfyui_version.py), e.g. '0.33.0'."""
        import re
        text = (self.comfyui / "comfyui_version.py").read_text()
        return re.search(r"__version__\s*=\s*['\"]([^'\"]+)", text).group(1)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class ComfyError(RuntimeError):
    """A prompt was rejected or failed; .payload holds the server's own error record."""

    def __init__(self, msg, payload=None):
        super().__init__(msg)
        self.payload = payload


# ----------------------------------------------------------------------------- the server
@dataclass
class ComfyServer:
    host: HostConfig
    base_dir: Path
    custom_nodes: dict = field(default_factory=dict)   # folder name -> source path (symlinked)
    extra_env: dict = field(default_factory=dict)
    extra_args: list = field(default_factory=list)
    startup_timeout: float = 240.0
    port: int = 0
    proc: subprocess.Popen | None = None

    def __post_init__(self):
        self.base_dir = Path(self.base_dir)
        if not self.custom_nodes:
            self.custom_nodes = {PACK_NAME: ROOT, "mv2id_test_nodes": TEST_NODES_DIR}
        self.client_id = uuid.uuid4().hex

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.base_dir / "server.log"

    @property
    def output_dir(self) -> Path:
        return self.base_dir / "output"

    @property
    def input_dir(self) -> Path:
        return self.base_dir / "input"

    def _prepare_base(self):
        for d in ("custom_nodes", "input", "output", "temp", "user", "models"):
            (self.base_dir / d).mkdir(parents=True, exist_ok=True)
        for name, src in self.custom_nodes.items():
            link = self.base_dir / "custom_nodes" / name
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(Path(src).resolve(), target_is_directory=True)
        # the host's own models first (real weights, if the user has them), then the tiny ones
        cfg = {"mv2id_tiny": {"base_path": str(self.host.tiny_models), **{k: k for k in TINY_MODEL_FOLDERS}}}
        host_models = self.host.comfyui / "models"
        if host_models.is_dir():
            cfg["host"] = {"base_path": str(host_models), **{k: k for k in HOST_MODEL_FOLDERS}}
        (self.base_dir / "extra_model_paths.yaml").write_text(json.dumps(cfg, indent=1))  # JSON is YAML

    def start(self) -> "ComfyServer":
        self._prepare_base()
        self.port = free_port()
        cmd = [self.host.python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
               "--base-directory", str(self.base_dir), "--disable-auto-launch",
               "--database-url", "sqlite:///:memory:",
               "--extra-model-paths-config", str(self.base_dir / "extra_model_paths.yaml"),
               *self.extra_args]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.extra_env}
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, cwd=self.host.comfyui, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        deadline = time.time() + self.startup_timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"ComfyUI exited during start-up (code {self.proc.returncode}); "
                                   f"log tail:\n{self.log_tail()}")
            try:
                self.get("/system_stats", timeout=2)
                return self
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"ComfyUI did not answer within {self.startup_timeout:.0f}s; log tail:\n{self.log_tail()}")

    def stop(self):
        """Stop the server's whole process group; waits until its port is closed."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=20)
        if self.proc is not None:
            try:  # children that outlived the leader
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None
        for _ in range(100):
            if not self.port or not port_is_open(self.port):
                break
            time.sleep(0.1)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def alive(self) -> bool:
        try:
            self.get("/system_stats", timeout=5)
            return self.proc is not None and self.proc.poll() is None
        except Exception:
            return False

    # ------------------------------------------------------------------------- HTTP helpers
    def _request(self, method, path, body=None, timeout=30):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
            return json.loads(raw) if raw else None

    def get(self, path, timeout=30):
        return self._request("GET", path, timeout=timeout)

    def post(self, path, body, timeout=30):
        return self._request("POST", path, body, timeout=timeout)

    def object_info(self) -> dict:
        if not hasattr(self, "_object_info"):
            self._object_info = self.get("/object_info", timeout=120)
        return self._object_info

    def queue(self, prompt: dict) -> str:
        """POST /prompt; raises ComfyError on any HTTP error: with the server's node_errors (a 400), or with
        the status and the body as text when it is not JSON (e.g. a 500 page)."""
        try:
            res = self.post("/prompt", {"prompt": prompt, "client_id": self.client_id})
        except urllib.error.HTTPError as e:
            body = e.read() or b"{}"
            try:
                payload = json.loads(body)
            except ValueError:
                payload = {"status": e.code, "body": body.decode(errors="replace")[:2000]}
            raise ComfyError(f"prompt rejected (HTTP {e.code}): {json.dumps(payload)[:2000]}", payload) from None
        return res["prompt_id"]

    def wait(self, prompt_id: str, timeout: float = 600.0) -> dict:
        """Wait until the prompt has finished; returns its /history entry or raises ComfyError."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            hist = self.get(f"/history/{prompt_id}")
            if hist and prompt_id in hist:
                entry = hist[prompt_id]
                status = entry.get("status", {})
                if status.get("completed") or status.get("status_str") in ("success", "error"):
                    if status.get("status_str") == "error":
                        raise ComfyError(f"prompt failed: {execution_error(entry)}", entry)
                    return entry
            if self.proc is not None and self.proc.poll() is not None:
                raise ComfyError(f"server died while running the prompt; log:\n{self.log_tail()}")
            time.sleep(0.25)
        raise TimeoutError(f"prompt {prompt_id} did not finish in {timeout:.0f}s")

    def free(self):
        """Unload models and clear ComfyUI's node cache, so the next prompt recomputes everything."""
        self.post("/free", {"unload_models": True, "free_memory": True})
        time.sleep(0.5)  # the worker wakes on the flag and handles it before the next prompt

    def run(self, prompt: dict, timeout: float = 600.0) -> dict:
        return self.wait(self.queue(prompt), timeout)

    def output_files(self, entry: dict, node_id: str | None = None) -> list[Path]:
        """Paths of the files the prompt's output nodes reported (images, videos, ...)."""
        paths = []
        for nid, out in entry.get("outputs", {}).items():
            if node_id is not None and nid != str(node_id):
                continue
            for key in ("images", "videos", "gifs", "animated", "files", "audio"):
                for item in out.get(key, []) or []:
                    if not isinstance(item, dict) or "filename" not in item:
                        continue
                    root = {"output": self.output_dir, "temp": self.base_dir / "temp",
                            "input": self.input_dir}.get(item.get("type", "output"), self.output_dir)
                    paths.append(root / item.get("subfolder", "") / item["filename"])
        return paths

    def ui_outputs(self, entry: dict, node_id: str) -> dict:
        return entry.get("outputs", {}).get(str(node_id), {})


def execution_error(entry: dict) -> str:
    for kind, data in entry.get("status", {}).get("messages", []):
        if kind == "execution_error":
            return f"{data.get('node_type')} (node {data.get('node_id')}): {data.get('exception_type')}: " \
                   f"{data.get('exception_message', '').strip()}"
    return "unknown error"


def temp_base(prefix="mv2id-comfy-") -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))


def remove_tree(path: Path):
    shutil.rmtree(path, ignore_errors=True)
