"""Mv2ID Face Views (choose and crop the multi-view references) and Mv2ID Load Face Photos (a folder of
photos of any sizes as one batch, each photo whole until Face Views crops it; read by mv2id_core.photos)."""
from __future__ import annotations

import json
import logging
import os

import numpy as np
import torch

import comfy.model_management
import comfy.utils
import folder_paths
from comfy_api.latest import io

from mv2id_core import photos as core_photos
from mv2id_core import views as core_views
from mv2id_core.errors import InputError
from mv2id_core.faces.base import as_image_list
from mv2id_core.video_io import IMAGE_EXTENSIONS, list_media
from .sockets import FaceAnalyzer
from .utils import Mv2IDNode, check_image_batch, log_inert

log = logging.getLogger("Mv2ID")
CATEGORY = "Mv2ID/faces"
NO_FOLDER = "(no folder in input/)"
BACKGROUND_NOTE = "background kept (no mask): the method expects references on white; connect a subject mask"


def _mask_list(mask) -> list[np.ndarray]:
    """MASK [B, H, W] (or [H, W]) -> list of float32 [H, W] (checked and resized by views.subject_masks_for)."""
    if not isinstance(mask, torch.Tensor) or mask.ndim not in (2, 3):
        raise InputError(f"mask must be a MASK [B, H, W], got {type(mask).__name__}"
                         f"{list(mask.shape) if hasattr(mask, 'shape') else ''}.")
    m = mask.detach().float().cpu()
    return list((m[None] if m.ndim == 2 else m).numpy())


class Mv2IDFaceViews(Mv2IDNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="Mv2IDFaceViews",
            display_name="Mv2ID Face Views",
            category=CATEGORY,
            description=(
                "Turns photos of a person (or the frames of a clip) into clean multi-view references: finds the "
                "largest face in every image with its head pose and quality, selects the views that spread "
                "widest over yaw and pitch, and crops each as an upright head-and-shoulders view, ordered from "
                "the person's left profile to the right. The method expects references on a white background: "
                "connect a subject mask (e.g. core Remove Background's MASK) so the background turns white; "
                "without one the crops keep the photos' background (views_json and the preview say so). "
                "Feed 'references' to Mv2ID Reference Conditioning."),
            inputs=[
                io.Image.Input("images", tooltip=(
                    "Photos of ONE person from different angles, or the frames of a video (e.g. from Load "
                    "Video / Get Video Components). Photos of different sizes: load them with Mv2ID Load Face "
                    "Photos, which keeps each photo whole (image batch nodes crop them to the first one's "
                    "shape).")),
                FaceAnalyzer.Input("analyzer", tooltip="Connect 'Mv2ID Face Analyzer'."),
                io.Int.Input("num_views", default=3, min=1, max=16, tooltip=(
                    "How many reference views to pick (the paper uses 3: e.g. left, frontal, right).")),
                io.Int.Input("width", default=512, min=64, max=4096, step=16,
                             tooltip="Width of each reference crop in pixels."),
                io.Int.Input("height", default=512, min=64, max=4096, step=16,
                             tooltip="Height of each reference crop in pixels."),
                io.Float.Input("margin", default=1.0, min=0.0, max=4.0, step=0.05, tooltip=(
                    "Context around the face, in face sizes above and below it (1.0 = head and shoulders, "
                    "0 = the face box only). The width follows the crop's aspect ratio.")),
                io.Boolean.Input("upright", default=True, tooltip=(
                    "Rotate each crop so the eyes are level (removes head roll).")),
                io.Combo.Input("if_no_face", options=list(core_views.IF_NO_FACE), default="error", tooltip=(
                    "error: stop and name the images without a face (right for hand-picked photos). skip: "
                    "ignore them (right for video frames).")),
                io.Float.Input("pitch_weight", default=0.5, min=0.0, max=2.0, step=0.05, tooltip=(
                    "How much up/down head angle counts against left/right angle when spreading the views "
                    "(0 = yaw only).")),
                io.Mask.Input("mask", optional=True, tooltip=(
                    "Subject masks (one per image, or one for all), e.g. core Remove Background's MASK: the "
                    "background becomes white as the method expects. Mv2ID Load Face Photos' mask marks each "
                    "photo's area, so its white padding counts as outside the photo. Faces are searched within "
                    "the mask's subject first, so a small photo's face is found at its own scale.")),
                io.Combo.Input("mask_meaning", options=list(core_views.MASK_MEANINGS), default="subject", tooltip=(
                    "subject: mask is 1 on the person (Remove Background, Load Face Photos). background: mask is "
                    "1 on the background.")),
                io.String.Input("photos_json", optional=True, force_input=True, tooltip=(
                    "Optional: Mv2ID Load Face Photos' photos_json, so views_json names the file of each view "
                    "and says which photos were scaled down at load.")),
            ],
            outputs=[
                io.Image.Output("references", display_name="references",
                                tooltip="The chosen views, cropped, ordered by yaw (IMAGE batch)."),
                io.Mask.Output("masks", display_name="masks", tooltip=(
                    "Per view: the person mask in the crop when a mask was given, otherwise 1 inside the source "
                    "image and 0 where the crop ran past its border.")),
                io.String.Output("views_json", display_name="views_json", tooltip=(
                    "JSON: per view the source image index, yaw/pitch/roll, detection score, face size, "
                    "sharpness, quality and identity similarity to the other views; images without a face; "
                    "whether the background was whitened or kept.")),
                io.Image.Output("preview", display_name="preview", tooltip=(
                    "The chosen views side by side with their angles written under them (and a note when the "
                    "background was kept).")),
            ],
            hidden=[io.Hidden.unique_id],       # to show inert settings on the node
        )

    @classmethod
    def execute(cls, images, analyzer, num_views, width, height, margin, upright, if_no_face, pitch_weight,
                mask=None, mask_meaning="subject", photos_json=None) -> io.NodeOutput:
        check_image_batch(images, "images")     # if_no_face and mask_meaning: checked first thing in face_views
        sources = None if photos_json is None else core_views.read_sources(photos_json, images.shape[0])
        imgs = as_image_list(images.detach().cpu(), "images")
        masks = None if mask is None else _mask_list(mask)
        pbar = comfy.utils.ProgressBar(len(imgs))

        def progress(done: int, total: int) -> None:
            comfy.model_management.throw_exception_if_processing_interrupted()
            pbar.update_absolute(done, total)

        result = core_views.face_views(imgs, analyzer, num_views=int(num_views), size=(int(width), int(height)),
                                       margin=float(margin), subject_masks=masks, if_no_face=if_no_face,
                                       pitch_weight=float(pitch_weight), upright=bool(upright), progress=progress,
                                       mask_meaning=mask_meaning)
        refs = torch.from_numpy(result.images.astype(np.float32) / 255.0)
        note = BACKGROUND_NOTE if masks is None else ""
        preview = core_views.preview_strip(result.images, result.views, note=note)
        report = result.report(sources)
        report["analyzer"] = analyzer.describe()
        log_inert("Face Views", result.inert, cls)
        return io.NodeOutput(refs, torch.from_numpy(result.masks), json.dumps(report, indent=1),
                             torch.from_numpy(preview.astype(np.float32) / 255.0)[None])


# ------------------------------------------------------------------------------------ Load Face Photos
DEFAULT_FOLDER = "mv2id_faces"     # the example workflows' folder: input/mv2id_faces/
MAX_FOLDER_DEPTH = 3               # input/ can hold large trees (video frames); look this deep, no deeper


def photo_folders() -> list[str]:
    """Folders under ComfyUI's input directory that hold photos (relative, '/'-separated), the example
    workflows' folder first, the others sorted; hidden ones skipped."""
    root = folder_paths.get_input_directory()
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        depth = 0 if rel == "." else rel.count(os.sep) + 1
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")) if depth < MAX_FOLDER_DEPTH else []
        if depth and any(f.lower().endswith(IMAGE_EXTENSIONS) for f in filenames):
            found.append(rel.replace(os.sep, "/"))
    return sorted(found, key=lambda f: (f != DEFAULT_FOLDER, f))


def photo_batch(photos: list[core_photos.Photo]) -> tuple[np.ndarray, np.ndarray]:
    """Photos of any sizes -> (IMAGE [N, H, W, 3] float32, MASK [N, H, W] float32) on a canvas of the largest
    width x height: each photo uncropped in the centre, white around it, mask = its area."""
    H = max(p.rgb.shape[0] for p in photos)
    W = max(p.rgb.shape[1] for p in photos)
    images = np.ones((len(photos), H, W, 3), np.float32)
    masks = np.zeros((len(photos), H, W), np.float32)
    for i, p in enumerate(photos):
        h, w = p.rgb.shape[:2]
        y, x = (H - h) // 2, (W - w) // 2
        images[i, y:y + h, x:x + w] = p.rgb.astype(np.float32) / 255.0
        masks[i, y:y + h, x:x + w] = p.area
    return images, masks


def inside(root: str, path) -> bool:
    """Does `path`, with every link resolved, lie inside the (resolved) folder `root`?"""
    try:
        return os.path.commonpath([root, os.path.realpath(path)]) == root
    except ValueError:          # Windows: another drive
        return False


def folder_photos(folder: str) -> list:
    """The photo files of input/<folder>, each checked to be a real file inside the input directory (a link
    that leads out of it is refused: a workflow must not read files the server does not share)."""
    root = os.path.realpath(folder_paths.get_input_directory())
    path = os.path.join(root, folder)
    if not inside(root, path) or not os.path.isdir(path):
        known = photo_folders()
        raise InputError(f"folder {folder!r} is not a folder in ComfyUI's input directory ({root}); "
                         + (f"choose one of: {', '.join(known[:20])}" + (" ..." if len(known) > 20 else "")
                            if known else "create one there (e.g. input/my_person/), put the photos in it "
                                          "and refresh."))
    files = list_media(path, IMAGE_EXTENSIONS)
    if not files:
        raise InputError(f"no photos in input/{folder} (looked for {', '.join(IMAGE_EXTENSIONS)}); put the "
                         f"photos of the person there and refresh.")
    for f in files:
        if not inside(root, f):
            raise InputError(f"input/{folder}/{f.name} is a link to a file outside ComfyUI's input directory; "
                             f"the pack reads photos only from there: copy the photo into input/{folder}/ instead "
                             f"of linking it.")
    return files


class Mv2IDLoadFacePhotos(Mv2IDNode):
    @classmethod
    def define_schema(cls):
        folders = photo_folders() or [NO_FOLDER]
        return io.Schema(
            node_id="Mv2IDLoadFacePhotos",
            display_name="Mv2ID Load Face Photos",
            category=CATEGORY,
            description=(
                "Loads every photo in a folder under ComfyUI's input directory as one batch for Mv2ID Face "
                "Views, keeping each photo whole at its own resolution: each sits uncropped in the centre of a "
                "white canvas as large as the largest photo, and the mask marks its area. (Image batch nodes "
                "instead resize and centre-crop every photo to the first one's shape, which can cut the face "
                "out of a portrait next to a landscape photo.) Any colour mode a camera or editor writes (8- and "
                "16-bit, grey, palette, CMYK, transparency) reads as core Load Image reads it where core is "
                "right; the EXIF orientation is applied and transparency composited on white. Photos above "
                "max_size are scaled down at load. Connect the mask to Face Views' mask, or run the batch "
                "through Remove Background and connect that mask; connect photos_json to Face Views too."),
            inputs=[
                io.Combo.Input("folder", options=folders, default=folders[0], tooltip=(
                    "A folder inside ComfyUI's input directory holding the photos of one person (.png, .jpg, "
                    ".jpeg, .webp, .bmp, .tif). Put them in e.g. input/my_person/ and refresh.")),
                io.Int.Input("max_size", default=core_photos.MAX_SIDE, min=0, max=16384, step=8, tooltip=(
                    f"Photos whose longer side is larger are scaled down to this many pixels at load, keeping "
                    f"their aspect ratio ({core_photos.MAX_SIDE}, the default, keeps 12-megapixel phone photos whole "
                    f"and leaves faces sharp for crops of up to 512 px; 0 = full resolution, up to "
                    f"{core_photos.MAX_PIXELS / 1e6:.0f} megapixels per photo). photos_json lists the photos "
                    f"that were scaled.")),
            ],
            outputs=[
                io.Image.Output("images", display_name="images", tooltip=(
                    "The photos, one per batch entry, each whole (scaled only above max_size) in the centre of a "
                    "white canvas of the largest width x height.")),
                io.Mask.Output("mask", display_name="mask", tooltip=(
                    "Per photo: 1 on the photo (its alpha where it has transparency), 0 on the white padding.")),
                io.String.Output("file_names", display_name="file_names",
                                 tooltip="The photos' file names, one per line, in batch order."),
                io.String.Output("photos_json", display_name="photos_json", tooltip=(
                    "JSON, one record per photo in batch order: file, size as loaded, scaled_from (when it was "
                    "scaled down), colour mode, alpha, EXIF orientation. Connect it to Face Views' photos_json "
                    "so views_json names each view's file and says when it was scaled.")),
            ],
        )

    @classmethod
    def execute(cls, folder, max_size) -> io.NodeOutput:
        files = folder_photos(folder)
        photos = []
        for f in files:
            comfy.model_management.throw_exception_if_processing_interrupted()
            photos.append(core_photos.read_photo(f, int(max_size), name=f"input/{folder}/{f.name}"))
        for p in photos:
            for note in p.notes:
                (log.warning if p.damaged and "damaged" in note else log.info)("[Mv2ID] Load Face Photos: %s", note)
        images, masks = photo_batch(photos)
        records = [dict(p.record(), file=f.name) for p, f in zip(photos, files)]
        return io.NodeOutput(torch.from_numpy(images), torch.from_numpy(masks), "\n".join(f.name for f in files),
                             json.dumps(records, indent=1))


NODES = [Mv2IDLoadFacePhotos, Mv2IDFaceViews]
