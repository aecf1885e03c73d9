"""Plot an identity report (from metrics.score_video) with PIL only: no plotting library needed.

Two panels sharing the frame axis:
- top: cosine similarity of each sampled frame to every reference (one coloured line per
  reference, black dashed line = mean over references) and, when the report has identity over time,
  MvRC per time segment (a thick teal step per segment, thin lines at the segment starts);
- bottom: head pose over time (yaw thick, pitch and roll thin), degrees.
Frames without a face are marked with grey bands in both panels. Axes are labelled, both
panels have a legend, and the title carries MvRC, FaceSim (-Cur), the two copy-paste readings and
the drift from the first segment to the last.
"""
from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont

PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]
POSE_COLOURS = {"yaw": (214, 39, 40), "pitch": (31, 119, 180), "roll": (44, 160, 44)}
SEGMENT_COLOUR = (96, 150, 140)       # MvRC per time segment: a muted teal no series uses
BG, AXIS, GRID, NOFACE = (255, 255, 255), (40, 40, 40), (225, 225, 225), (236, 236, 236)
MIN_SIZE = (320, 240)        # the smallest plot (width, height) the layout fits


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has no sized default font
        return ImageFont.load_default()


def _text_size(draw: ImageDraw.ImageDraw, text: str, font) -> tuple[int, int]:
    x1, y1, x2, y2 = draw.textbbox((0, 0), text, font=font)
    return x2 - x1, y2 - y1


def _nice_ticks(lo: float, hi: float, n: int = 5, integer: bool = False) -> list[float]:
    if not math.isfinite(lo) or not math.isfinite(hi) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    if integer:
        step = max(1.0, float(math.ceil(step)))
    first = math.ceil(lo / step - 1e-9) * step
    return [round(first + i * step, 10) for i in range(int((hi - first) / step + 1e-9) + 1)]


def _fmt(v: float) -> str:
    return f"{v:.0f}" if abs(v - round(v)) < 1e-9 and abs(v) >= 1 else f"{v:.3g}"


class _Panel:
    def __init__(self, draw, box, xlim, ylim, font):
        self.draw, self.box, self.xlim, self.ylim, self.font = draw, box, xlim, ylim, font

    def px(self, x: float, y: float) -> tuple[float, float]:
        (l, t, r, b), (x0, x1), (y0, y1) = self.box, self.xlim, self.ylim
        fx = 0.5 if x1 == x0 else (x - x0) / (x1 - x0)
        fy = 0.5 if y1 == y0 else (y - y0) / (y1 - y0)
        return l + fx * (r - l), b - fy * (b - t)

    def frame(self, xlabel: str, ylabel: str, image: Image.Image):
        d, (l, t, r, b), f = self.draw, self.box, self.font
        for y in _nice_ticks(*self.ylim):
            _, py = self.px(self.xlim[0], y)
            d.line([(l, py), (r, py)], fill=GRID)
            tw, th = _text_size(d, _fmt(y), f)
            d.text((l - 6 - tw, py - th / 2 - 2), _fmt(y), fill=AXIS, font=f)
        for x in _nice_ticks(*self.xlim, n=8, integer=True):
            px, _ = self.px(x, self.ylim[0])
            d.line([(px, b), (px, b + 4)], fill=AXIS)
            tw, _ = _text_size(d, _fmt(x), f)
            d.text((px - tw / 2, b + 6), _fmt(x), fill=AXIS, font=f)
        d.rectangle([l, t, r, b], outline=AXIS)
        tw, th = _text_size(d, xlabel, f)
        d.text(((l + r) / 2 - tw / 2, b + 8 + th + 4), xlabel, fill=AXIS, font=f)
        # vertical y label: draw on a strip and rotate
        tw, th = _text_size(d, ylabel, f)
        strip = Image.new("RGB", (tw + 4, th + 6), BG)
        ImageDraw.Draw(strip).text((2, 0), ylabel, fill=AXIS, font=f)
        strip = strip.rotate(90, expand=True)
        image.paste(strip, (int(l - 52 - strip.width), int((t + b) / 2 - strip.height / 2)))

    def noface_bands(self, xs: np.ndarray, has_face: np.ndarray):
        (l, t, r, b) = self.box
        step = (self.px(1, 0)[0] - self.px(0, 0)[0]) / 2 if len(xs) > 1 else (r - l) / 2
        for x, h in zip(xs, has_face):
            if not h:
                px, _ = self.px(x, 0)
                self.draw.rectangle([max(l + 1, px - step), t + 1, min(r - 1, px + step), b - 1], fill=NOFACE)

    def line(self, xs, ys, colour, width=2, dashed=False, markers=True):
        """Polyline through finite points; NaN breaks the line."""
        seg = []
        pts = [(self.px(x, y) if np.isfinite(y) else None) for x, y in zip(xs, ys)]
        for p in pts + [None]:
            if p is None:
                if len(seg) > 1:
                    if dashed:
                        for a, c in zip(seg[:-1], seg[1:]):
                            self._dashed(a, c, colour, width)
                    else:
                        self.draw.line(seg, fill=colour, width=width, joint="curve")
                seg = []
            else:
                seg.append(p)
        if markers:
            for p in pts:
                if p is not None:
                    self.draw.ellipse([p[0] - 2.5, p[1] - 2.5, p[0] + 2.5, p[1] + 2.5], fill=colour)

    def _dashed(self, a, c, colour, width, dash=7.0):
        length = math.hypot(c[0] - a[0], c[1] - a[1])
        n = max(1, int(length / dash))
        for i in range(0, n, 2):
            p0 = (a[0] + (c[0] - a[0]) * i / n, a[1] + (c[1] - a[1]) * i / n)
            p1 = (a[0] + (c[0] - a[0]) * min(i + 1, n) / n, a[1] + (c[1] - a[1]) * min(i + 1, n) / n)
            self.draw.line([p0, p1], fill=colour, width=width)

    def legend(self, items: list[tuple[str, tuple, bool]]):
        d, (_, t, r, _), f = self.draw, self.box, self.font
        rows = [(label, col, dashed) for label, col, dashed in items]
        w = max(_text_size(d, lab, f)[0] for lab, _, _ in rows) + 40
        h = _text_size(d, "Ag", f)[1] + 6
        x0, y0 = r - w - 8, t + 8
        d.rectangle([x0, y0, x0 + w, y0 + h * len(rows) + 6], fill=BG, outline=(160, 160, 160))
        for i, (lab, col, dashed) in enumerate(rows):
            y = y0 + 4 + i * h + h / 2
            if col == NOFACE:
                d.rectangle([x0 + 6, y - h / 2 + 3, x0 + 30, y + h / 2 - 3], fill=col, outline=(190, 190, 190))
            elif dashed:
                self._dashed((x0 + 6, y), (x0 + 30, y), col, 2, dash=5)
            else:
                d.line([(x0 + 6, y), (x0 + 30, y)], fill=col, width=3)
            d.text((x0 + 36, y - h / 2 + 1), lab, fill=AXIS, font=f)


def _series(report: dict):
    """(frame index [F], has face [F], similarity [F, M], mean similarity [F], pose [F, 3]) of the report."""
    per = report.get("per_frame", [])
    xs = np.array([p["frame"] for p in per], dtype=np.float64)
    has = np.array([bool(p.get("face")) for p in per], dtype=bool)
    sim = np.full((len(per), len(report.get("references", []))), np.nan)
    pose = np.full((len(per), 3), np.nan)
    for i, p in enumerate(per):
        if p.get("face"):
            sim[i] = [np.nan if v is None else v for v in p["similarity"]]
            pose[i] = [p.get("yaw", np.nan), p.get("pitch", np.nan), p.get("roll", np.nan)]
    mean = np.array([p.get("mean_similarity") if p.get("face") else np.nan for p in per], dtype=np.float64)
    return xs, has, sim, mean, pose


def _title(d: ImageDraw.ImageDraw, report: dict, title: str | None, width: int, font) -> int:
    """Draw the title (scores, copy-paste readings, drift) in as few centred lines as fit; returns its bottom."""
    def f3(v):
        return "n/a" if v is None else f"{v:.3f}"
    names = report.get("metric_names", {})
    cp = report.get("copy_paste", {})
    cur = (f"{names.get('facesim_cur', 'FaceSim-Cur')} {f3(report.get('facesim_cur'))}   "
           if report.get("facesim_cur") is not None else "")
    parts = [title] if title else [
        f"{names.get('mvrc', 'MvRC')} {f3(report.get('mvrc'))}   {names.get('facesim', 'FaceSim')} "
        f"{f3(report.get('facesim'))}   {cur}faces {report.get('frames_with_face', 0)}/"
        f"{report.get('sampled_frames', 0)}",
        f"near-copies {f3(cp.get('near_copy_rate'))}   pose-following {f3(cp.get('pose_following'))}",
        _drift_text(report)]
    lines: list[str] = []
    for part in filter(None, parts):
        joined = f"{lines[-1]}   {part}" if lines else part
        if lines and _text_size(d, joined, font)[0] <= width - 16:
            lines[-1] = joined
        else:
            lines.append(part)
    y = 8
    for line in lines:
        tw, th = _text_size(d, line, font)
        d.text(((width - tw) / 2, y), line, fill=AXIS, font=font)
        y += th + 6
    return y


def plot_report(report: dict, width: int = 1024, height: int = 640, title: str | None = None) -> Image.Image:
    """Render the report's per-frame similarities and head pose; returns an RGB PIL image [height, width]."""
    if width < MIN_SIZE[0] or height < MIN_SIZE[1]:
        raise ValueError(f"plot size {width}x{height} is too small; use at least {MIN_SIZE[0]}x{MIN_SIZE[1]}.")
    img = Image.new("RGB", (int(width), int(height)), BG)
    d = ImageDraw.Draw(img)
    fs = max(10, min(16, int(height / 42)))
    font = _font(fs)
    xs, has, sim, mean, pose = _series(report)
    top = _title(d, report, title, width, _font(fs + 2)) + 8
    left, right = 92, width - 20
    label_h = 2 * (_text_size(d, "0", font)[1] + 10)
    h1 = int((height - top - 2 * label_h - 20) * 0.55)
    xlim = (float(xs.min()), float(xs.max())) if xs.size else (0.0, 1.0)
    if xlim[0] == xlim[1]:
        xlim = (xlim[0] - 1, xlim[1] + 1)
    _similarity_panel(img, d, report, (left, top, right, top + h1), xlim, xs, has, sim, mean, font)
    _pose_panel(img, d, (left, top + h1 + label_h + 16, right, height - label_h - 6), xlim, xs, has, pose, font)
    return img


def _similarity_panel(img, d, report, box, xlim, xs, has, sim, mean, font) -> None:
    """Top panel: similarity to each reference, their mean, MvRC per time segment, frames without a face."""
    refs = report.get("references", [])
    finite = sim[np.isfinite(sim)]
    p1 = _Panel(d, box, xlim, (min(0.0, float(finite.min())) if finite.size else 0.0, 1.0), font)
    p1.noface_bands(xs, has)
    p1.frame("frame", "cosine similarity", img)
    items = []
    for k, ref in enumerate(refs):
        col = PALETTE[k % len(PALETTE)]
        if ref.get("face"):
            p1.line(xs, sim[:, k], col)
        items.append((f"{ref.get('name', k)}" + ("" if ref.get("face") else " (no face)"), col, False))
    if len(refs) > 1:
        p1.line(xs, mean, (0, 0, 0), width=2, dashed=True, markers=False)
        items.append(("mean", (0, 0, 0), True))
    segmented = (report.get("over_time") or [None])[0]
    if segmented:
        _segments(p1, segmented)
        items.append((f"MvRC per {segmented['length']:g} {_unit(segmented)}", SEGMENT_COLOUR, False))
    if (~has).any():
        items.append(("no face", NOFACE, False))
    p1.legend(items)


def _pose_panel(img, d, box, xlim, xs, has, pose, font) -> None:
    """Bottom panel: yaw, pitch and roll over the frames."""
    fp = pose[np.isfinite(pose)]
    span = max(30.0, float(np.abs(fp).max()) * 1.1) if fp.size else 30.0
    p2 = _Panel(d, box, xlim, (-span, span), font)
    p2.noface_bands(xs, has)
    p2.frame("frame", "head pose (degrees)", img)
    zx0, zy = p2.px(xlim[0], 0)
    d.line([(zx0, zy), (box[2], zy)], fill=(170, 170, 170))
    for j, name in enumerate(("yaw", "pitch", "roll")):
        p2.line(xs, pose[:, j], POSE_COLOURS[name], width=3 if name == "yaw" else 1, markers=name == "yaw")
    p2.legend([(n, c, False) for n, c in POSE_COLOURS.items()])


def _unit(seg: dict) -> str:
    return "s" if seg["unit"] == "seconds" else "frames"


def _drift_text(report: dict) -> str:
    """'drift per 1 s: MvRC -0.052 FaceSim -0.041' for the report's first segmentation ('' without one)."""
    seg = (report.get("over_time") or [None])[0]
    if not seg or seg["drift"].get("mvrc") is None:
        return ""
    return (f"drift per {seg['length']:g} {_unit(seg)}: MvRC {seg['drift']['mvrc']:+.3f} "
            f"FaceSim {seg['drift']['facesim']:+.3f}")


def _segments(panel: "_Panel", seg: dict) -> None:
    """MvRC per segment as a thick step over the segment's frames, thin lines where segments start."""
    for s in seg["segments"]:
        x0, x1 = s["first_frame"], s["last_frame"]
        top, bottom = panel.px(x0, panel.ylim[1])[1], panel.px(x0, panel.ylim[0])[1]
        if x0 > panel.xlim[0]:
            px = panel.px(x0 - 0.5, 0)[0]
            panel.draw.line([(px, top), (px, bottom)], fill=SEGMENT_COLOUR, width=1)
        if s["mvrc"] is not None:
            (a, y), (b, _) = panel.px(max(x0, panel.xlim[0]), s["mvrc"]), panel.px(min(x1, panel.xlim[1]), s["mvrc"])
            panel.draw.line([(a, y), (b, y)], fill=SEGMENT_COLOUR, width=4)


def to_image_tensor_array(img: Image.Image) -> np.ndarray:
    """PIL RGB image -> float32 [1, H, W, 3] in 0..1 (the layout of a ComfyUI IMAGE)."""
    return (np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0)[None]
