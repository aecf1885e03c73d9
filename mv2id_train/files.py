"""The training tools' files: JSON-lines logs and atomic writes, written once for all of them.

A JSONL file (state, manifest, training log) is appended line by line; a crash in the middle of
a write leaves a torn last line. read_jsonl drops such a line (and cuts it from the file, so the
next append starts on a fresh line); a bad line anywhere else is real damage and is reported
with its file and line number. Whole files (summaries, indexes) are written to a temporary file
and moved into place, so a reader never sees half a file.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path

from mv2id_core.errors import InputError

log = logging.getLogger("Mv2ID")


def read_jsonl(path, repair: bool = True) -> list[dict]:
    """Rows of a JSON-lines file ([] when it does not exist).

    A last line that is not valid JSON (a write cut short by a crash) is dropped, and with
    `repair` cut from the file too. Any other bad line raises InputError naming the line.
    """
    p = Path(path)
    if not p.is_file():
        return []
    data = p.read_bytes()
    lines = data.split(b"\n")
    rows, start = [], 0
    for n, raw in enumerate(lines):
        if raw.strip():
            try:
                rows.append(json.loads(raw))
            except ValueError:
                if any(l.strip() for l in lines[n + 1:]):
                    raise InputError(f"{p}, line {n + 1}: not valid JSON ({raw[:80]!r}); the file is damaged: "
                                     f"fix or remove that line") from None
                log.warning("[Mv2ID] %s: dropped an incomplete last line (an interrupted write)", p)
                if repair:
                    write_atomic(p, data[:start])
                return rows
        start += len(raw) + 1
    if repair and data and not data.endswith(b"\n"):
        write_atomic(p, data + b"\n")      # a complete last row: the next append starts a new line
    return rows


def append_jsonl(path, rows) -> None:
    """Append rows, one JSON object per line, and flush them to disk."""
    with open(path, "a") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
        f.flush()
        os.fsync(f.fileno())


@contextlib.contextmanager
def replacing(path):
    """Yield a temporary path beside `path`; on success it replaces `path` in one step."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_atomic(path, data: str | bytes) -> None:
    with replacing(path) as tmp:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data)


def write_json(path, obj, indent: int | None = 1) -> None:
    write_atomic(path, json.dumps(obj, indent=indent))


def write_jsonl(path, rows) -> None:
    write_atomic(path, "".join(json.dumps(r) + "\n" for r in rows))
