"""Mv2ID training: in-paired data preparation, latent caching and region-masked RD-RoPE fine-tuning.

Training runs ComfyUI's own Wan 2.1 model code (comfy.ldm.wan.model.WanModel) with the same
RD-RoPE replacement of `rope_encode` and the same reference joining on the time axis
(`time_dim_concat`) that the inference nodes use, so positions at training and test time
cannot drift apart. Command-line tools: mv2id-data, mv2id-cache, mv2id-train.
ComfyUI is found through MV2ID_COMFYUI or COMFYUI_PATH (or the pinned test host in .host/).
"""


def progress_bar(enabled: bool, total: int, initial: int, desc: str, unit: str):
    """A tqdm bar (resumed at `initial`), or None when disabled or tqdm is not installed."""
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True)
