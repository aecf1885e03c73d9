"""Mv2ID Identity Score: MvRC, FaceSim (Arc, and Cur with a CurricularFace file), pose and copy-paste
readings of a generated video."""
from __future__ import annotations

import json
import logging
import math
import os

import torch

import comfy.model_management
import comfy.utils
import folder_paths
from comfy_api.latest import io

from mv2id_core import metrics as core_metrics
from mv2id_core.faces.curricularface import WEIGHT_EXTENSIONS, CurricularFace
from mv2id_core.plot import plot_report, to_image_tensor_array
from .sockets import FaceAnalyzer
from .utils import Mv2IDNode, check_image_batch, check_option, register_model_folder

log = logging.getLogger("Mv2ID")
CATEGORY = "Mv2ID/evaluation"
CUR_FOLDER = "curricularface"
NO_CUR = "none"


register_model_folder(CUR_FOLDER, set(WEIGHT_EXTENSIONS))   # FaceSim-Cur weights
_cur_cache: dict[tuple, CurricularFace] = {}


def curricularface(name: str) -> CurricularFace | None:
    """The CurricularFace model of a file in models/curricularface (kept loaded while the file is unchanged)."""
    if name == NO_CUR:
        return None
    check_option(name, [NO_CUR] + folder_paths.get_filename_list(CUR_FOLDER), "curricularface_model")
    path = folder_paths.get_full_path(CUR_FOLDER, name)
    device = comfy.model_management.get_torch_device()
    key = (path, os.path.getmtime(path), str(device))
    if key not in _cur_cache:
        _cur_cache.clear()
        _cur_cache[key] = CurricularFace(path, device=str(device))
    return _cur_cache[key]


class Mv2IDIdentityScore(Mv2IDNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="Mv2IDIdentityScore",
            display_name="Mv2ID Identity Score",
            category=CATEGORY,
            description=(
                "Scores how well a generated video keeps the identity of the reference faces. MvRC: mean "
                "cosine similarity of face identity embeddings over sampled frames and all references (the "
                "paper's MvRC-Arc with the insightface backend). FaceSim: OpenS2V-Eval's FaceSim-Arc protocol "
                "(32 evenly sampled frames, largest face, one grey-padding retry, max(0, cos), frames without a "
                "face skipped); it equals OpenS2V's arc_score with insightface's buffalo_l pack at det_size 320 "
                "and one reference (the report's 'protocol' says whether it does). With a CurricularFace "
                "IR-101 file it adds FaceSim-Cur, the number OpenS2V-Eval's leaderboard uses. The JSON report "
                "adds the per-frame head pose, the fraction of frames with a face, the identity spread, identity "
                "over time (MvRC and FaceSim per second or per N frames, and the drift from the first segment to "
                "the last) and two copy-paste readings from the aligned face crops: how often frames are "
                "near-copies of a reference image, and whether the copying follows the head pose (1 = each "
                "reference is pasted when the head takes its pose, 0 = no such copying). Face finding (including "
                "OpenS2V's grey-padding retry) follows the Face Analyzer's settings."),
            inputs=[
                io.Image.Input("frames", tooltip=(
                    "The generated video as an IMAGE batch (one image per frame), e.g. from VAE Decode or "
                    "Get Video Components.")),
                io.Image.Input("references", tooltip=(
                    "Reference face images of the identity as an IMAGE batch (the same images you conditioned "
                    "on, or more views of the person). References without a detectable face are skipped and "
                    "listed in the report.")),
                FaceAnalyzer.Input("analyzer", tooltip=(
                    "Face detector + recognition model: connect 'Mv2ID Face Analyzer'. dlib works offline; "
                    "insightface gives the paper's MvRC-Arc (buffalo_l at det_size 320 for OpenS2V's numbers).")),
                io.Int.Input("num_frames", default=core_metrics.FACESIM_FRAMES, min=0, max=100000, tooltip=(
                    "Frames sampled evenly over the video (OpenS2V uses 32; a shorter video repeats frames, "
                    "which the report notes). 0 scores every frame once.")),
                io.Int.Input("plot_width", default=1024, min=320, max=4096, step=16,
                             tooltip="Width of the plot image in pixels."),
                io.Int.Input("plot_height", default=640, min=240, max=4096, step=16,
                             tooltip="Height of the plot image in pixels."),
                io.Float.Input("fps", default=0.0, min=0.0, max=1000.0, step=0.01, tooltip=(
                    "Frames per second of the video, for identity over time per second: connect the fps output "
                    "of Get Video Components (or type it; Wan 2.1 makes 16 fps). 0 = unknown: no per-second "
                    "segments.")),
                io.Float.Input("segment_seconds", default=core_metrics.SEGMENT_SECONDS, min=0.0, max=3600.0,
                               step=0.1, tooltip=(
                                   "Identity over time: MvRC and FaceSim per segment of this many seconds, and "
                                   "their drift from the first segment to the last, in the report and the plot, "
                                   "so you see where a long video loses the face. Needs fps. 0 = none.")),
                io.Int.Input("segment_frames", default=0, min=0, max=100000, tooltip=(
                    "Identity over time per this many frames as well, e.g. the context length of Wan Context "
                    "Windows (81) to score each window. 0 = none.")),
                io.Combo.Input("curricularface_model", options=[NO_CUR] + folder_paths.get_filename_list(CUR_FOLDER),
                               default=NO_CUR, optional=True, tooltip=(
                                   "CurricularFace IR-101 weights in models/curricularface/ (OpenS2V-Eval's "
                                   "glint360k_curricular_face_r101_backbone.bin, or a safetensors copy) for "
                                   "FaceSim-Cur; none skips it.")),
            ],
            outputs=[
                io.Float.Output("mvrc", display_name="MvRC", tooltip=(
                    "Mean cosine similarity over sampled frames with a face and all references (NaN when no "
                    "sampled frame shows a face).")),
                io.Float.Output("facesim", display_name="FaceSim", tooltip=(
                    "FaceSim-Arc (OpenS2V protocol): mean over frames with a face of max(0, cos), averaged over "
                    "references (0 when no frame shows a face).")),
                io.String.Output("report", display_name="report", tooltip=(
                    "The full report as JSON: which OpenS2V numbers these are, notes (e.g. repeated frames), "
                    "per-frame pose and similarities, face fraction, identity spread, identity over time "
                    "(per-segment scores and drift), copy-paste readings, settings.")),
                io.Image.Output("plot", display_name="plot", tooltip=(
                    "Similarity per frame for each reference (with MvRC per time segment) and the head-pose "
                    "trajectory; connect to Preview Image or Save Image.")),
                io.Float.Output("facesim_cur", display_name="FaceSim-Cur", tooltip=(
                    "OpenS2V-Eval's FaceSim-Cur with the CurricularFace model (frames scoring 0 dropped, as "
                    "OpenS2V does); NaN when no model is chosen.")),
            ],
        )

    @classmethod
    def execute(cls, frames, references, analyzer, num_frames, plot_width, plot_height, fps, segment_seconds,
                segment_frames, curricularface_model=NO_CUR) -> io.NodeOutput:
        check_image_batch(frames, "frames")
        check_image_batch(references, "references")
        cur = curricularface(curricularface_model)
        pbar = comfy.utils.ProgressBar(references.shape[0] + min(frames.shape[0], num_frames or frames.shape[0]))

        def progress(done: int, total: int) -> None:
            comfy.model_management.throw_exception_if_processing_interrupted()
            pbar.update_absolute(done, total)

        report = core_metrics.score_video(
            frames.detach().cpu(), references.detach().cpu(), analyzer, num_frames=int(num_frames),
            curricularface=cur, fps=fps, segment_seconds=segment_seconds, segment_frames=segment_frames,
            progress=progress)
        for note in report["notes"]:
            log.warning("[Mv2ID] Identity Score: %s", note)
        plot = torch.from_numpy(to_image_tensor_array(plot_report(report, int(plot_width), int(plot_height))))
        mvrc = report["mvrc"] if report["mvrc"] is not None else math.nan
        cur_value = report["facesim_cur"] if report["facesim_cur"] is not None else math.nan
        return io.NodeOutput(float(mvrc), float(report["facesim"]), json.dumps(report, indent=1), plot,
                             float(cur_value))


NODES = [Mv2IDIdentityScore]
