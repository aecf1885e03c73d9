"""Photos in: the pack's one reader of image files (Load Face Photos, mv2id-eval references, mv2id-cache).

Every Pillow mode a camera, editor or screenshot tool writes becomes 8-bit RGB with the pixels core
ComfyUI's Load Image gives where core is right (docs: README "Photos"):

- ``1 L P RGB CMYK YCbCr`` and the alpha modes ``LA PA RGBA`` (and ``P``/``L``/``RGB`` with a
  transparent colour): Pillow's own conversion, as core 0.3.75 does;
- 16-bit grey (``I;16`` / ``I;16B`` / ``I;16L``, and ``I``, which holds 16-bit samples in practice):
  value / 65535, as core 0.33.0 reads them (0.3.75 clips them to white);
- 32-bit float grey (``F``): the 0..1 range image editors write (both cores clip it to black).

The EXIF orientation is applied; transparency is composited on white, the method's reference
background, with the alpha returned beside it. Memory stays bounded: a file above MAX_PIXELS (a
decompression bomb or a scan far beyond any face photo) is refused before it is decoded, and a
photo whose longer side is above ``max_side`` (MAX_SIDE by default) is scaled down at load, JPEGs
already while decoding (Pillow's draft mode decodes at 1/2, 1/4 or 1/8 of the size).

Images are numpy arrays: RGB uint8 [H, W, 3], alpha float32 [H, W] in 0..1.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import MediaError

# Default longest side at load: 4096 keeps a 12 MP phone photo (4032x3024) whole and leaves a face that
# fills a tenth of the frame over 400 px wide, more than a 512 px head-and-shoulders crop needs.
MAX_SIDE = 4096
# Largest photo read at all (width x height): Pillow's decompression-bomb error threshold (2 x its default
# MAX_IMAGE_PIXELS), written here so the pack's limit does not move with another package's setting.
MAX_PIXELS = 178_956_970
# 16-bit grey modes (and "I", which Pillow uses for 16-bit PNG/TIFF samples through some paths)
SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")
WHITE = 255


@dataclass
class Photo:
    """One photo as read: rgb [H, W, 3] uint8 (on white where it was transparent, unless asked not to),
    alpha [H, W] float32 (None when the file has no transparency), its size before scaling (after the
    EXIF orientation), the file's Pillow mode, and notes for the user."""
    name: str
    rgb: np.ndarray
    alpha: np.ndarray | None
    original_size: tuple[int, int]      # (width, height), after the orientation when it was applied
    mode: str
    exif_orientation: int = 1           # the file's EXIF orientation (1 = upright)
    oriented: bool = True               # whether it was applied
    damaged: str = ""                   # what Pillow found wrong when the file was read as far as it goes
    notes: list[str] = field(default_factory=list)

    @property
    def size(self) -> tuple[int, int]:
        return self.rgb.shape[1], self.rgb.shape[0]

    @property
    def scaled(self) -> bool:
        return self.size != self.original_size

    @property
    def area(self) -> np.ndarray:
        """float32 [H, W]: 1 on the photo, its alpha where it is transparent."""
        return self.alpha if self.alpha is not None else np.ones(self.rgb.shape[:2], np.float32)

    def record(self) -> dict:
        """What the photo was, for reports (views_json, logs)."""
        out = {"file": self.name, "size": list(self.size), "mode": self.mode, "alpha": self.alpha is not None}
        if self.scaled:
            out["scaled_from"] = list(self.original_size)
        if self.exif_orientation != 1:
            out["exif_orientation"] = self.exif_orientation
            out["oriented"] = self.oriented
        if self.notes:
            out["notes"] = list(self.notes)
        return out


def scaled_size(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """(w, h) scaled uniformly so the longer side is at most max_side (0 = unchanged), each side >= 1."""
    w, h = size
    if not max_side or max(w, h) <= max_side:
        return w, h
    s = max_side / max(w, h)
    return max(1, round(w * s)), max(1, round(h * s))


def read_photo(path, max_side: int = MAX_SIDE, *, orient: bool = True, on_white: bool = True,
               name: str | None = None) -> Photo:
    """Read one photo file (first frame of an animation) -> Photo. See the module docstring for the rules.

    max_side: scale down so the longer side is at most this (0 = never). orient: apply the EXIF
    orientation. on_white: composite transparency on white (False keeps the colour stored under it, as
    OpenS2V-Eval reads references). Raises MediaError naming the file for anything it cannot read."""
    from PIL import ImageOps

    p = Path(path)
    name = name or p.name
    im = src = _open(p, name)
    try:
        exif_orientation = int(im.getexif().get(0x0112, 1) or 1)
        exif_orientation = exif_orientation if exif_orientation in range(1, 9) else 1
        orientation = exif_orientation if orient else 1
        original = im.size
        target = scaled_size(original, max_side)          # uniform, so the same in either orientation
        if target != im.size and im.format == "JPEG":
            im.draft(im.mode, target)          # decode at 1/2, 1/4 or 1/8 scale, never below target
        damaged = _load(im, name)
        if orientation in (5, 6, 7, 8):                   # a quarter turn: width and height swap
            original, target = original[::-1], target[::-1]
        if orientation != 1:
            im = ImageOps.exif_transpose(im)
        mode = im.mode
        rgb, alpha = _pixels(im, name, target)
    finally:
        src.close()
    photo = Photo(name, rgb, alpha, original, mode, exif_orientation, orient)
    if on_white and alpha is not None:
        photo.rgb = composite_on_white(rgb, alpha)
    photo.damaged = damaged
    if damaged:
        photo.notes.append(f"{name} is damaged or cut short ({damaged}); read as far as it goes, as core Load "
                           f"Image does (a missing part is grey): check the photo, or save or copy it again")
    if photo.scaled:
        photo.notes.append(f"{name}: scaled from {original[0]}x{original[1]} to {photo.size[0]}x{photo.size[1]} "
                           f"(longer side at most {max_side} px)")
    return photo


def _open(p: Path, name: str):
    from PIL import Image, UnidentifiedImageError

    limit = (f"the limit of {MAX_PIXELS / 1e6:.0f} megapixels for one photo (a guard against decompression "
             f"bombs, which would fill the memory)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(p)
    except FileNotFoundError:
        raise MediaError(f"photo not found: {p}") from None
    except Image.DecompressionBombError as e:      # Pillow's own guard fired first (its size is in the text)
        found = re.search(r"\((\d+) pixels\)", str(e))
        size = f" ({int(found.group(1)) / 1e6:.0f} megapixels)" if found else ""
        raise MediaError(f"the photo {name}{size} is larger than {limit}. Scale it down in an image editor (a "
                         f"face photo needs no more than {MAX_SIDE} px on its longer side).") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise MediaError(f"cannot read the photo {name}: {e}. Photos must be image files (PNG, JPEG, WebP, "
                         f"BMP, TIFF).") from None
    w, h = im.size
    if w * h > MAX_PIXELS:
        im.close()
        raise MediaError(f"the photo {name} is {w}x{h} ({w * h / 1e6:.0f} megapixels), larger than {limit}. "
                         f"Scale it down in an image editor (a face photo needs no more than {MAX_SIDE} px "
                         f"on its longer side).")
    if w < 1 or h < 1:
        im.close()
        raise MediaError(f"the photo {name} is empty ({w}x{h} pixels).")
    return im


def _load(im, name: str) -> str:
    """Decode; a file Pillow finds cut short or damaged is read again as far as it goes, as core Load Image
    does (many cameras and sites write JPEGs with a broken end). Returns what was wrong ("" when nothing)."""
    from PIL import ImageFile

    try:
        im.load()
        return ""
    except (OSError, ValueError, SyntaxError) as e:
        problem = str(e)
    before = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        im.load()
    except (OSError, ValueError, SyntaxError) as e:
        raise MediaError(f"cannot read the photo {name}: {e}. The file is damaged or cut short (an interrupted "
                         f"download or copy?): save or copy it again.") from None
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = before
    return problem


def _pixels(im, name: str, target: tuple[int, int]) -> tuple[np.ndarray, np.ndarray | None]:
    """A loaded (and oriented) Pillow image -> (rgb uint8 [h, w, 3] straight colour, alpha float32 [h, w] or
    None), resized to `target` (w, h)."""
    from PIL import Image

    if im.mode in SIXTEEN_BIT or im.mode == "F":
        return _grey_high_bit(im, target)
    has_alpha = "A" in im.getbands() or "a" in im.getbands() or "transparency" in im.info
    mode = "RGBA" if has_alpha else "RGB"
    try:
        im = im if im.mode == mode and "transparency" not in im.info else im.convert(mode)   # no full-size copy
    except (ValueError, OSError) as e:
        raise MediaError(f"cannot read the photo {name}: its colour mode {im.mode} cannot be converted to RGB "
                         f"({e}); save it as an RGB PNG or JPEG.") from None
    if im.size != target:
        im = im.resize(target, Image.LANCZOS, reducing_gap=3.0)   # premultiplied for RGBA (Pillow does that)
    a = np.asarray(im)
    if not has_alpha:
        return a, None
    return np.ascontiguousarray(a[..., :3]), a[..., 3].astype(np.float32) / 255.0


def _grey_high_bit(im, target: tuple[int, int]) -> tuple[np.ndarray, np.ndarray | None]:
    """16-bit ("I;16*", "I") and float ("F") grey -> RGB uint8: value / 65535, or the 0..1 float range."""
    from PIL import Image

    transparent = im.info.get("transparency") if isinstance(im.info.get("transparency"), (int, float)) else None
    alpha = None
    if transparent is not None:     # a 16-bit grey PNG with one transparent value (tRNS)
        alpha = (np.asarray(im) != transparent).astype(np.float32)
    if im.mode != "F":
        im = im.convert("I") if im.mode != "I" else im      # one integer mode for every byte order
    if im.size != target:
        im = im.resize(target, Image.LANCZOS, reducing_gap=3.0)
        if alpha is not None:
            alpha = np.asarray(Image.fromarray(alpha).resize(target, Image.BILINEAR))
    a = np.asarray(im)
    if im.mode == "F":
        grey = np.clip(np.nan_to_num(a, nan=0.0), 0.0, 1.0) * 255.0
    else:
        grey = np.clip(a, 0, 65535).astype(np.float32) * (255.0 / 65535.0)
    grey = (grey + 0.5).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1), alpha


def composite_on_white(rgb, alpha):
    """Straight colour on white: rgb * alpha + white * (1 - alpha) (the method's reference background).

    rgb: uint8 [..., H, W, 3] (rounded to the nearest level) or float 0..1 (numpy or torch);
    alpha: [..., H, W] or [..., H, W, 1] in 0..1."""
    if isinstance(rgb, np.ndarray) and rgb.dtype == np.uint8:
        a = np.asarray(alpha, np.float32)
        a = a[..., None] if a.ndim == rgb.ndim - 1 else a
        out = rgb.astype(np.float32) * a + WHITE * (1.0 - a)
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)
    a = alpha[..., None] if alpha.ndim == rgb.ndim - 1 else alpha
    return rgb * a + (1.0 - a)
