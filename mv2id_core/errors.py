"""The errors the pack raises on purpose. Every message names the problem and the fix.

All derive from Mv2IDError, and from the builtin a caller would expect (ValueError for bad
input, TypeError for the wrong kind of model, RuntimeError for a missing library or file).
"""
from __future__ import annotations


class Mv2IDError(Exception):
    """Base of every error the pack raises on purpose."""


class InputError(Mv2IDError, ValueError):
    """An input (image, video, size, setting) the method cannot use."""


class NoFaceError(InputError):
    """No usable face where one is needed."""


class NoReferenceFaceError(NoFaceError):
    """None of the reference images shows a face, so identity cannot be scored."""


class MediaError(InputError):
    """A video or image file that cannot be read."""


class ModelTypeError(Mv2IDError, TypeError):
    """A model or VAE of another kind than the method needs (e.g. not Wan 2.1)."""


class FaceAnalysisError(Mv2IDError, RuntimeError):
    """A face backend's library or model files are missing or broken."""


class ComfyUINotFound(Mv2IDError, RuntimeError):
    """No ComfyUI folder to import the Wan model code from (training, standalone tools)."""


class UsageError(Mv2IDError):
    """A command-line tool was called with arguments it cannot use."""


def check_choice(value, options, name: str):
    """`value` when it is one of `options`, else InputError naming the valid values (the one check of a
    choice among fixed values, for the library's settings and the nodes' combos alike)."""
    options = list(options)
    if value not in options:
        shown = ", ".join(map(str, options[:40])) + (f", ... ({len(options)} in all)" if len(options) > 40 else "")
        raise InputError(f"{name} must be one of {shown}, got {value!r}.")
    return value
