"""Test-only: make ComfyUI report an older version (MV2ID_FAKE_COMFYUI_VERSION) than it is.

Python imports this file at start-up when its folder is on PYTHONPATH; the `comfyui_version`
module placed in sys.modules here is what ComfyUI's main.py, its server and the pack then see.
"""
import os
import sys
import types

_fake = types.ModuleType("comfyui_version")
_fake.__version__ = os.environ["MV2ID_FAKE_COMFYUI_VERSION"]
sys.modules["comfyui_version"] = _fake
