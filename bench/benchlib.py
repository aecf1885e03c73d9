"""Small pieces the benchmark scripts share (command-line backend options, the JSON results file)."""
from __future__ import annotations

import json
import os
import platform
from pathlib import Path


def backend_options(items: list[str]) -> dict[str, dict]:
    """["insightface:model_dir=/x", ...] -> {"insightface": {"model_dir": "/x"}}; the values stay text:
    mv2id_core.faces.load_analyzer converts them (analyzer_settings, the one place options become settings)."""
    options: dict[str, dict] = {}
    for item in items:
        backend, _, kv = item.partition(":")
        key, _, value = kv.partition("=")
        options.setdefault(backend, {})[key] = value
    return options


def machine() -> dict:
    return {"cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "python": platform.python_version()}


def write_results(path: str | None, settings: dict, results: list) -> None:
    """Write {"settings", "results"} as JSON when a path was given."""
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps({"settings": {**settings, **machine()}, "results": results}, indent=1))
