"""Photo files in every Pillow mode a camera, editor or screenshot tool writes, each with the pixels it must
read as, computed here from the numbers written (not by the code under test): the library tests and the
host tests (Load Face Photos beside core Load Image) share them.

write_modes(folder) -> {file name: Case}. Case.rgb is the expected RGB uint8 [H, W, 3] on white,
Case.alpha the expected alpha (None: opaque), Case.tol the largest difference allowed in 8-bit levels
(0 for lossless files; lossy JPEGs compare with the pixels written, within what JPEG changes).
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

H, W = 48, 64


@dataclass
class Case:
    mode: str                    # the mode Pillow opens the file in
    rgb: np.ndarray              # expected RGB uint8 on white
    alpha: np.ndarray | None     # expected alpha 0..1, None = opaque
    tol: float = 0.0             # max |difference| in 8-bit levels
    mean_tol: float = 0.0        # max mean |difference| (lossy files)


def _grid():
    yy, xx = np.mgrid[0:H, 0:W]
    return yy, xx


def source_rgb() -> np.ndarray:
    yy, xx = _grid()
    return np.stack([xx * 4, yy * 5, (xx + yy) * 2], -1).astype(np.uint8)


def source_alpha() -> np.ndarray:
    """0 at the left edge, opaque from x = 48: uint8 [H, W]."""
    _, xx = _grid()
    return np.clip(xx * 16 // 3, 0, 255).astype(np.uint8)


def on_white(rgb: np.ndarray, alpha_u8: np.ndarray) -> np.ndarray:
    a = alpha_u8.astype(np.float64)[..., None] / 255.0
    return np.floor(rgb * a + 255.0 * (1.0 - a) + 0.5).astype(np.uint8)


def grey3(g: np.ndarray) -> np.ndarray:
    return np.repeat(g[..., None], 3, -1).astype(np.uint8)


def sixteen_to_8(v) -> np.ndarray:
    return np.floor(np.clip(np.asarray(v, np.float64), 0, 65535) * 255.0 / 65535.0 + 0.5).astype(np.uint8)


def png16(path: Path, samples: np.ndarray, color_type: int) -> None:
    """A 16-bit PNG (grey 0, RGB 2, RGBA 6) written by hand: Pillow cannot write 16-bit colour PNGs."""
    h, w = samples.shape[:2]
    raw = b"".join(b"\0" + samples[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def _palette():
    idx = (np.arange(H * W).reshape(H, W) * 7 % 64).astype(np.uint8)
    pal = np.array([[(i * 37) % 256, (i * 91) % 256, (i * 53) % 256] for i in range(256)], np.uint8)
    return idx, pal


def _modes_lossless(d: Path) -> dict[str, Case]:
    rgb, alpha = source_rgb(), source_alpha()
    yy, xx = _grid()
    grey = rgb[..., 1].copy()
    cases = {}
    bits = (xx + yy) % 3 == 0
    Image.fromarray(bits).save(d / "mode_1.png")
    cases["mode_1.png"] = Case("1", grey3(bits * 255), None)
    Image.fromarray(grey).save(d / "mode_L.png")
    cases["mode_L.png"] = Case("L", grey3(grey), None)
    Image.fromarray(np.stack([grey, alpha], -1), "LA").save(d / "mode_LA.png")
    cases["mode_LA.png"] = Case("LA", on_white(grey3(grey), alpha), alpha / 255.0)
    idx, pal = _palette()
    p = Image.fromarray(idx, "P")
    p.putpalette(pal.tobytes())
    p.save(d / "mode_P.png")
    cases["mode_P.png"] = Case("P", pal[idx], None)
    p.save(d / "mode_P.gif")
    cases["mode_P.gif"] = Case("P", pal[idx], None)
    p.save(d / "mode_P_transparent.png", transparency=7)
    t_alpha = np.where(idx == 7, 0, 255).astype(np.uint8)
    cases["mode_P_transparent.png"] = Case("P", on_white(pal[idx], t_alpha), t_alpha / 255.0)
    p.save(d / "mode_P_transparent.gif", transparency=7)
    cases["mode_P_transparent.gif"] = Case("P", on_white(pal[idx], t_alpha), t_alpha / 255.0)
    pa = p.convert("PA")
    pa.putalpha(Image.fromarray(alpha))
    pa.save(d / "mode_PA.tif")
    cases["mode_PA.tif"] = Case("PA", on_white(pal[idx], alpha), alpha / 255.0)
    g16 = (xx * 1000 + yy * 17 + 300).astype(np.uint16)         # 300 .. 63799
    Image.fromarray(g16).save(d / "mode_I16.png")
    cases["mode_I16.png"] = Case("I;16", grey3(sixteen_to_8(g16)), None)
    Image.fromarray(g16).save(d / "mode_I16.tif")
    cases["mode_I16.tif"] = Case("I;16", grey3(sixteen_to_8(g16)), None)
    Image.fromarray(g16.astype(">u2")).save(d / "mode_I16B.tif")
    cases["mode_I16B.tif"] = Case("I;16B", grey3(sixteen_to_8(g16)), None)
    g32 = g16.astype(np.int32) * 2 - 20000                     # below 0 and above 65535: clipped
    Image.fromarray(g32).save(d / "mode_I.tif")
    cases["mode_I.tif"] = Case("I", grey3(sixteen_to_8(g32)), None)
    f = (xx / (W - 1) * 1.2 - 0.1).astype(np.float32)          # -0.1 .. 1.1: clipped to 0..1
    Image.fromarray(f).save(d / "mode_F.tif")
    cases["mode_F.tif"] = Case("F", grey3(np.floor(np.clip(f, 0, 1) * 255.0 + 0.5)), None, tol=0.5)
    for ext in ("png", "tif", "bmp", "webp"):
        Image.fromarray(rgb).save(d / f"mode_RGB.{ext}", **({"lossless": True} if ext == "webp" else {}))
        cases[f"mode_RGB.{ext}"] = Case("RGB", rgb, None)
    for ext in ("png", "tif", "webp"):
        options = {"lossless": True, "exact": True} if ext == "webp" else {}
        Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(d / f"mode_RGBA.{ext}", **options)
        cases[f"mode_RGBA.{ext}"] = Case("RGBA", on_white(rgb, alpha), alpha / 255.0)
    cmyk = np.stack([xx * 3, yy * 4, (xx + yy) * 2, (xx * yy) % 60], -1).astype(np.uint8)
    Image.fromarray(cmyk, "CMYK").save(d / "mode_CMYK.tif")
    nk = 255.0 - cmyk[..., 3:].astype(np.float64)
    cases["mode_CMYK.tif"] = Case("CMYK", np.floor(nk - cmyk[..., :3] * nk / 255.0 + 0.5).astype(np.uint8),
                                  None, tol=1)
    ycc = np.stack([grey, 128 + (xx - 32) * 2, 128 + (yy - 24) * 2], -1).astype(np.uint8)
    Image.fromarray(ycc, "YCbCr").save(d / "mode_YCbCr.tif")
    y, cb, cr = (ycc[..., i].astype(np.float64) for i in range(3))
    full = np.stack([y + 1.402 * (cr - 128), y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128),
                     y + 1.772 * (cb - 128)], -1)                 # JFIF (full-range BT.601)
    cases["mode_YCbCr.tif"] = Case("YCbCr", np.floor(np.clip(full, 0, 255) + 0.5).astype(np.uint8), None, tol=1)
    Image.fromarray(grey).save(d / "mode_L_transparent.png", transparency=int(grey[10, 10]))
    t_alpha = np.where(grey == grey[10, 10], 0, 255).astype(np.uint8)
    cases["mode_L_transparent.png"] = Case("L", on_white(grey3(grey), t_alpha), t_alpha / 255.0)
    colour = tuple(int(c) for c in rgb[5, 9])
    Image.fromarray(rgb).save(d / "mode_RGB_transparent.png", transparency=colour)
    t_alpha = np.where((rgb == colour).all(-1), 0, 255).astype(np.uint8)
    cases["mode_RGB_transparent.png"] = Case("RGB", on_white(rgb, t_alpha), t_alpha / 255.0)
    rgb16 = (np.dstack([xx * 1000, yy * 1300, (xx + yy) * 500]) + 77).astype(np.uint16)
    png16(d / "mode_RGB16.png", rgb16, 2)                      # Pillow keeps the high byte: within one level
    cases["mode_RGB16.png"] = Case("RGB", sixteen_to_8(rgb16), None, tol=1)
    a16 = (alpha.astype(np.uint16) * 257)
    png16(d / "mode_RGBA16.png", np.dstack([rgb16, a16]), 6)
    cases["mode_RGBA16.png"] = Case("RGBA", on_white(sixteen_to_8(rgb16), alpha), alpha / 255.0, tol=1)
    return cases


def _modes_lossy(d: Path) -> dict[str, Case]:
    rgb = source_rgb()
    grey = rgb[..., 1].copy()
    cases = {}
    Image.fromarray(rgb).save(d / "mode_RGB.jpg", quality=95)
    cases["mode_RGB.jpg"] = Case("RGB", rgb, None, tol=12, mean_tol=1.5)
    Image.fromarray(grey).save(d / "mode_L.jpg", quality=95)
    cases["mode_L.jpg"] = Case("L", grey3(grey), None, tol=6, mean_tol=1.0)
    Image.fromarray(rgb).convert("CMYK").save(d / "mode_CMYK.jpg", quality=95)
    cases["mode_CMYK.jpg"] = Case("CMYK", rgb, None, tol=12, mean_tol=1.5)
    return cases


# EXIF orientation -> what a viewer shows, from the stored pixels (EXIF 2.3, tag 0x0112)
ORIENT = {1: lambda a: a, 2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
          5: lambda a: a.swapaxes(0, 1), 6: lambda a: a[::-1].swapaxes(0, 1),
          7: lambda a: a[::-1, ::-1].swapaxes(0, 1), 8: lambda a: a[:, ::-1].swapaxes(0, 1)}


def _orientations(d: Path) -> dict[str, Case]:
    rgb = source_rgb()
    cases = {}
    for o, show in ORIENT.items():
        ex = Image.Exif()
        ex[0x0112] = o
        Image.fromarray(rgb).save(d / f"exif_{o}.png", exif=ex)
        cases[f"exif_{o}.png"] = Case("RGB", np.ascontiguousarray(show(rgb)), None)
    ex = Image.Exif()
    ex[0x0112] = 6
    Image.fromarray(rgb).save(d / "exif_6.jpg", quality=95, exif=ex)
    cases["exif_6.jpg"] = Case("RGB", np.ascontiguousarray(ORIENT[6](rgb)), None, tol=12, mean_tol=1.5)
    return cases


def write_modes(folder) -> dict[str, Case]:
    d = Path(folder)
    d.mkdir(parents=True, exist_ok=True)
    return {**_modes_lossless(d), **_modes_lossy(d), **_orientations(d)}


def levels(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(max, mean) |a - b| in 8-bit levels; uint8 arrays are levels, float arrays 0..1."""
    def as255(x):
        x = np.asarray(x)
        return x.astype(np.float64) * (1.0 if x.dtype == np.uint8 else 255.0)
    d = np.abs(as255(a) - as255(b))
    return float(d.max()), float(d.mean())
