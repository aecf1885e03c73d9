"""Argument types and checks shared by the command-line tools (mv2id-data, mv2id-cache,
mv2id-train, mv2id-eval): every tool rejects a bad value the same way, up front, in one line.

Each `type=` function raises argparse.ArgumentTypeError, which argparse prints as
"PROG: error: argument --flag: <message>" and exits with status 2 before any work starts.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's layout and shows each option's default (when it has one) in its help."""

    def _get_help_string(self, action):
        text = action.help or ""
        if (action.default not in (None, False, argparse.SUPPRESS) and not action.required
                and "%(default)" not in text and action.option_strings):
            text += " (default: %(default)s)"
        return text


def _number(text: str, kind):
    try:
        v = kind(text)
    except (TypeError, ValueError):
        name = "a whole number" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"must be {name}, got {text!r}") from None
    if kind is float and not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return v


def number(kind=float, low=None, high=None, low_open: bool = False):
    """An argparse type: int or float within [low, high] (low excluded when low_open)."""
    def parse(text: str):
        v = _number(text, kind)
        if low is not None and (v <= low if low_open else v < low):
            raise argparse.ArgumentTypeError(f"must be {'>' if low_open else '>='} {low}, got {text}")
        if high is not None and v > high:
            raise argparse.ArgumentTypeError(f"must be <= {high}, got {text}")
        return v
    parse.__name__ = kind.__name__       # argparse names the type in its "invalid ... value" fallback
    return parse


def checked(parse, check):
    """An argparse type: `parse` the text (e.g. number(float)), then apply the library's own rule `check`
    (which returns the value or raises ValueError), so a flag is refused by the same rule the library uses."""
    def run(text: str):
        value = parse(text)
        try:
            return check(value)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    run.__name__ = getattr(parse, "__name__", "value")
    return run


positive_int = number(int, 1)
nonnegative_int = number(int, 0)
positive_float = number(float, 0, low_open=True)
nonnegative_float = number(float, 0)
fraction = number(float, 0, 1)


def frame_count(text: str) -> int:
    """A Wan 2.1 video length: 4n+1 frames."""
    from ..errors import InputError
    from ..latents import check_length
    v = positive_int(text)
    try:
        check_length(v)
    except InputError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return v


def size(text: str, minimum: tuple[int, int] = (1, 1), example: str = "512x512") -> tuple[int, int]:
    """WIDTHxHEIGHT with whole numbers of at least `minimum` -> (width, height)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be WIDTHxHEIGHT, e.g. {example}, got {text!r}") from None
    if minimum == (1, 1) and (w < 1 or h < 1):
        raise argparse.ArgumentTypeError(f"width and height must be at least 1, got {text!r}")
    if w < minimum[0] or h < minimum[1]:
        raise argparse.ArgumentTypeError(f"{w}x{h} is too small: at least {minimum[0]}x{minimum[1]} is needed")
    return w, h


def shard(text: str) -> tuple[int, int]:
    """i/n with 0 <= i < n: this machine's share of the work -> (i, n)."""
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be i/n, e.g. 0/4, got {text!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise argparse.ArgumentTypeError(f"must be i/n with 0 <= i < n, got {text!r}")
    return i, n


def out_dir(text: str) -> Path:
    """An output folder: may not exist yet, but must not be a file."""
    p = Path(text).expanduser()
    if p.exists() and not p.is_dir():
        raise argparse.ArgumentTypeError(f"{p} is a file, not a folder: give a folder for the output")
    for parent in p.parents:
        if parent.exists():
            if not parent.is_dir():
                raise argparse.ArgumentTypeError(f"{parent} is a file, so {p} cannot be created: give another folder")
            break
    return p


def existing_file(text: str) -> Path:
    p = Path(text).expanduser()
    if not p.is_file():
        raise argparse.ArgumentTypeError(f"{p} is not a file" if p.exists() else f"{p} not found")
    return p


def existing_dir(text: str) -> Path:
    p = Path(text).expanduser()
    if not p.is_dir():
        raise argparse.ArgumentTypeError(f"{p} is not a folder" if p.exists() else f"{p} not found")
    return p


def error_line(prog: str, error: BaseException) -> str:
    """'PROG: error: message' on one line (library messages may carry line breaks)."""
    return f"{prog}: error: {' '.join(str(error).split())}"


def settings_changes(recorded: dict, current: dict) -> list[str]:
    """'key: old -> new' for every setting that differs between two runs into the same folder
    (`current` is compared as JSON stores it: tuples become lists)."""
    current = json.loads(json.dumps(current))
    keys = sorted(set(recorded) | set(current))
    return [f"{k}: {recorded.get(k)!r} -> {current.get(k)!r}" for k in keys if recorded.get(k) != current.get(k)]
