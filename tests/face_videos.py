"""Synthetic-truth face videos for the copy-paste readings, built at run time from the test photos.

The truth of every frame is known by construction:

- **views of one person** (the references of the Mv2ID setting): the Tom Hanks portrait, its mirror image
  and a new view of it (the face as a depth surface, from the mean face fitted to its landmarks, turned
  25 degrees towards frontal), re-lit;
- **several people**: the portrait and two people of the group photo;
- classes of frames: ``copy`` (a reference pasted at its own pose: the view-dependent copy-paste),
  ``blend`` (two references mixed, 25 to 75 %), ``new`` (the same person in another pose and expression:
  the depth warp at 10-20 degrees of yaw and up to 10 of pitch, smile and brows moved, re-lit: what a
  good Mv2ID video shows), ``other`` (people who are not in the references, and their mirror images);
- noise levels a real video has: ``none``; ``mid`` (the face at about 100 px, moved 3 px, turned 4
  degrees in the image, scaled 5 %, brightness 15 %, JPEG quality 50); ``strong`` (about 80 px, 6 px,
  8 degrees, 10 %, brightness 25 % falling off 35 % across the face, gamma, blur up to 1 px, JPEG 25).

Images are RGB uint8 [H, W, 3]; frames are 160 x 160 with the face pasted on grey.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter

from mv2id_core.faces import find_face
from mv2id_core.faces import pose as P
from photos import fit, load_photos, t1_face

FRAME = 160
BACKGROUND = (118, 120, 124)
LEVELS = ("none", "mid", "strong")
CLASSES = ("copy", "blend", "new", "other")
NOISE = {  # shift px, image rotation deg, scale, gain, light fall-off, gamma (log), blur px, JPEG quality, face px
    "none": dict(shift=0, angle=0, scale=0, gain=0, falloff=0, gamma=0, blur=0, quality=None, size=(128, 0)),
    "mid": dict(shift=3, angle=4, scale=0.05, gain=0.15, falloff=0, gamma=0, blur=0, quality=50, size=(104, 8)),
    "strong": dict(shift=6, angle=8, scale=0.10, gain=0.25, falloff=0.35, gamma=0.25, blur=1.0, quality=25,
                   size=(84, 8)),
}
BLEND_WEIGHTS = (0.25, 0.4, 0.5, 0.6, 0.75)


# ----------------------------------------------------------------------------- image operations
def remap(img: np.ndarray, source) -> np.ndarray:
    """Backward warp: source(xs, ys) -> (sx, sy) pixel coordinates to sample (bilinear, edges repeated)."""
    import torch
    h, w = img.shape[:2]
    ys, xs = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    sx, sy = source(xs, ys)
    grid = torch.from_numpy(np.stack([sx / (w - 1) * 2 - 1, sy / (h - 1) * 2 - 1], -1)[None]).float()
    t = torch.from_numpy(img.astype(np.float32)).permute(2, 0, 1)[None]
    out = torch.nn.functional.grid_sample(t, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out[0].permute(1, 2, 0).clamp(0, 255).round().byte().numpy()


def _bilinear(a: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    h, w = a.shape
    x, y = np.clip(xs, 0, w - 1), np.clip(ys, 0, h - 1)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = x - x0, y - y0
    return (a[y0, x0] * (1 - fx) * (1 - fy) + a[y0, x1] * fx * (1 - fy) + a[y1, x0] * (1 - fx) * fy
            + a[y1, x1] * fx * fy)


def landmarks(img: np.ndarray, analyzer) -> np.ndarray:
    """The 68 landmarks [68, 2] of the face in a small photo (found on a 4x enlargement)."""
    big = np.asarray(Image.fromarray(img).resize((img.shape[1] * 4, img.shape[0] * 4), Image.BICUBIC))
    face, _ = find_face(analyzer, big, embed=False)
    return face.landmarks[:, :2] / 4.0


def depth(img: np.ndarray, lm: np.ndarray) -> np.ndarray:
    """Per-pixel depth (pixels, towards the camera) of insightface's mean face fitted to the landmarks."""
    X = P.MEANSHAPE_68.astype(np.float64)
    A = np.linalg.lstsq(X - X.mean(0), lm - lm.mean(0), rcond=None)[0].T          # [2, 3] ~ scale * R[:2]
    u, sv, vt = np.linalg.svd(A, full_matrices=False)
    r = u @ vt
    z = sv.mean() * ((X - X.mean(0)) @ np.cross(r[0], r[1]))
    ys, xs = np.mgrid[0:img.shape[0], 0:img.shape[1]].astype(np.float64)
    sigma = 0.12 * np.ptp(lm[:, 0])                     # smooth enough that turns up to 25 degrees do not fold
    wts = np.exp(-((xs[..., None] - lm[:, 0]) ** 2 + (ys[..., None] - lm[:, 1]) ** 2) / (2 * sigma ** 2)) + 1e-12
    return (wts * z).sum(-1) / wts.sum(-1)


def turn(img: np.ndarray, lm: np.ndarray, yaw: float = 0.0, pitch: float = 0.0) -> np.ndarray:
    """A new view: the photo as a depth surface turned by yaw / pitch degrees about a vertical / horizontal
    axis just behind the face (no occlusion: for turns up to about 25 degrees)."""
    z = depth(img, lm)
    c = lm.mean(0)
    h, w = img.shape[:2]
    zc = np.median(_bilinear(z, lm[:, 0], lm[:, 1])) - 0.15 * np.ptp(lm[:, 0])
    ty, tp = np.radians(yaw), np.radians(pitch)

    def source(xs, ys):
        sx, sy = xs.copy(), ys.copy()
        for _ in range(4):                       # the depth is read where the pixel comes from
            zi = _bilinear(z, sx, sy) - zc
            sx = c[0] + (xs - c[0] - zi * np.sin(ty)) / np.cos(ty)
            sy = c[1] + (ys - c[1] + zi * np.sin(tp)) / np.cos(tp)
        return sx, sy
    return remap(img, source)


def expression(img: np.ndarray, smile: float = 0.0, brows: float = 0.0) -> np.ndarray:
    """Mouth corners pulled out and up by `smile` px, brows raised by `brows` px (for a 112-px face)."""
    s = img.shape[1] / 112.0
    bumps = [((41.5, 92), (-smile, -0.6 * smile)), ((70.7, 92), (smile, -0.6 * smile)),
             ((38, 40), (0, -brows)), ((74, 40), (0, -brows))]

    def source(xs, ys):
        dx, dy = np.zeros_like(xs), np.zeros_like(ys)
        for (px, py), (ux, uy) in bumps:
            g = np.exp(-((xs - px * s) ** 2 + (ys - py * s) ** 2) / (2 * (9 * s) ** 2))
            dx += ux * s * g
            dy += uy * s * g
        return xs - dx, ys - dy
    return remap(img, source)


def relight(img: np.ndarray, left: float = 1.0, right: float = 1.0, gamma: float = 1.0) -> np.ndarray:
    """Brightness times a gain falling linearly from `left` to `right` across the image, after a gamma."""
    gain = np.linspace(left, right, img.shape[1])[None, :, None]
    return np.clip((img / 255.0) ** gamma * gain * 255 + 0.5, 0, 255).astype(np.uint8)


def place(face: np.ndarray, size: float = 128, dx: float = 0, dy: float = 0, angle: float = 0.0) -> np.ndarray:
    """A FRAME x FRAME frame: the face image (mirror-padded so a rotation shows no corners) resized to
    `size`, rotated by `angle` degrees, pasted on grey at the centre moved by (dx, dy)."""
    pad = face.shape[0] // 4
    big = np.pad(face, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
    side = int(round(size))
    bside = int(round(side * big.shape[0] / face.shape[0]))
    im = Image.fromarray(big).resize((bside, bside), Image.BICUBIC)
    if angle:
        im = im.rotate(angle, resample=Image.BICUBIC)
    o = (bside - side) // 2
    canvas = Image.new("RGB", (FRAME, FRAME), BACKGROUND)
    canvas.paste(im.crop((o, o, o + side, o + side)), ((FRAME - side) // 2 + int(dx), (FRAME - side) // 2 + int(dy)))
    return np.asarray(canvas)


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=int(quality))
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def noisy(face: np.ndarray, level: str, rng: np.random.Generator) -> np.ndarray:
    """One video frame of `face` at a noise level (module docstring)."""
    n = NOISE[level]
    u = lambda a: rng.uniform(-a, a) if a else 0.0          # noqa: E731
    gain, fall = 1 + u(n["gain"]), u(n["falloff"])
    lit = relight(face, gain * (1 - fall), gain * (1 + fall), float(np.exp(u(n["gamma"]))))
    size = n["size"][0] + u(n["size"][1])
    frame = place(lit, size * (1 + u(n["scale"])), u(n["shift"]), u(n["shift"]), u(n["angle"]))
    if n["blur"]:
        frame = np.asarray(Image.fromarray(frame).filter(ImageFilter.GaussianBlur(rng.uniform(0, n["blur"]))))
    return jpeg(frame, n["quality"]) if n["quality"] else frame


# ----------------------------------------------------------------------------- the truth sets
class Faces:
    """The photos and the landmarks the depth warps need (one dlib analyzer)."""

    def __init__(self, analyzer):
        self.tom, self.group = load_photos()
        self.mirror = np.ascontiguousarray(self.tom[:, ::-1])
        self.lm = {"tom": landmarks(self.tom, analyzer), "mirror": landmarks(self.mirror, analyzer)}

    def person(self, i: int) -> np.ndarray:
        """Person i of the group photo, the face filling the image as in the portrait."""
        return fit(t1_face(self.group, i, margin=0.15), 112)

    def references(self, kind: str) -> list[np.ndarray]:
        """'one': three views of one person; 'several': three people."""
        if kind == "one":
            return [self.tom, self.mirror, relight(turn(self.tom, self.lm["tom"], yaw=-25), 1.15, 0.8)]
        return [self.tom, self.person(0), self.person(2)]

    def others(self, kind: str) -> list[np.ndarray]:
        """People who are not in the references, and their mirror images."""
        people = [self.person(i) for i in ((1, 3, 4, 5) if kind == "several" else range(6))]
        return people + [np.ascontiguousarray(p[:, ::-1]) for p in people]

    def new_view(self, rng: np.random.Generator, mirror: bool) -> np.ndarray:
        """The person of the portrait in a pose and expression no reference shows."""
        base, lm = (self.mirror, self.lm["mirror"]) if mirror else (self.tom, self.lm["tom"])
        view = turn(base, lm, yaw=rng.uniform(10, 20) * rng.choice([-1, 1]), pitch=rng.uniform(-10, 10))
        view = expression(view, smile=rng.uniform(2, 4), brows=rng.uniform(1, 3))
        return relight(view, rng.uniform(0.8, 1.2), rng.uniform(0.8, 1.2))


def class_faces(faces: Faces, kind: str, cls: str, rng: np.random.Generator, per_ref: int = 6,
                weights=BLEND_WEIGHTS) -> list[np.ndarray]:
    """The face images (before noise) of one truth class for the references of `kind`: `per_ref` copies of
    each reference, blends of every pair at `weights`, 3 * per_ref new views, every other person."""
    refs = faces.references(kind)
    if cls == "copy":                                   # every reference pasted, each at its own pose
        return [r for r in refs for _ in range(per_ref)]
    if cls == "blend":
        return [(a * refs[i].astype(np.float64) + (1 - a) * refs[j]).astype(np.uint8)
                for i, j in ((0, 1), (0, 2), (1, 2)) for a in weights]
    if cls == "new":
        return [faces.new_view(rng, mirror=bool(k % 2)) for k in range(3 * per_ref)]
    return faces.others(kind)


def video(faces: Faces, kind: str, cls: str, level: str, seed: int = 0, **sizes) -> list[np.ndarray]:
    """The frames of one synthetic-truth video: class `cls` for the references of `kind` at a noise level
    (`sizes`: class_faces' per_ref and weights)."""
    rng = np.random.default_rng([seed, LEVELS.index(level), CLASSES.index(cls), kind == "one"])
    return [noisy(f, level, rng) for f in class_faces(faces, kind, cls, rng, **sizes)]


def reference_frames(faces: Faces, kind: str) -> list[np.ndarray]:
    """The references as the metrics see them: each photo at 128 px on a frame, no noise."""
    return [place(r) for r in faces.references(kind)]
