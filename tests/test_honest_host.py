"""Honest about what it used, on the real host: a LoRA whose Mv2ID RD-RoPE record is incomplete is refused
(never filled with defaults and reported as recorded); settings that make another input inert say so in
the log, and the input really is inert (two runs that differ only in it give the same latent)."""
from __future__ import annotations

import asyncio
import struct
import threading
import time

import pytest
import torch
from safetensors.torch import save_file

from graphs import Graph
from model_path_graphs import conditioning, error_of, latent, mv2id, ref_files, run_latent

__all__ = ["ref_files"]   # module fixture
P = "mv2id.rdrope."


def _lora(comfy, name, metadata):
    folder = comfy.base_dir / "models" / "loras"
    folder.mkdir(parents=True, exist_ok=True)
    save_file({"diffusion_model.blocks.0.ffn.0.lora_up.weight": torch.zeros(8, 4)}, str(folder / name),
              metadata=metadata)
    return name


def _graph(names, save, *, rdrope=None, **sampler):
    g = Graph()
    mv2id(g, names, save=save, steps=2, **sampler)
    node = next(n for n in g.nodes.values() if n["class_type"] == "Mv2IDRDRoPE")
    node["inputs"].update(rdrope or {})
    return g


def _lines(comfy, mark):
    return [line for line in comfy.log_tail(600).splitlines() if "[Mv2ID]" in line and mark in line]


def run_with_node_texts(comfy, prompt, timeout=300):
    """Run a prompt while listening on the page's websocket -> (history entry, {node id: [texts shown on the
    node]}): the progress-text messages (binary type 3) the ComfyUI page draws on a running node."""
    import aiohttp

    texts, ready, done = {}, threading.Event(), threading.Event()

    async def listen():
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"{comfy.url}/ws?clientId=mv2id-node-texts") as ws:
                ready.set()
                while not done.is_set():
                    try:
                        msg = await ws.receive(timeout=0.25)
                    except asyncio.TimeoutError:
                        continue
                    if msg.type != aiohttp.WSMsgType.BINARY:
                        continue
                    if struct.unpack(">I", msg.data[:4])[0] == 3:
                        body = msg.data[4:]
                        n = struct.unpack(">I", body[:4])[0]
                        texts.setdefault(body[4:4 + n].decode(), []).append(body[4 + n:].decode())

    thread = threading.Thread(target=lambda: asyncio.run(listen()), daemon=True)
    thread.start()
    assert ready.wait(20), "could not connect to the websocket"
    try:
        entry = comfy.run(prompt, timeout)
        time.sleep(0.5)                       # messages sent during the run are still on their way
    finally:
        done.set()
        thread.join(10)
    return entry, texts


@pytest.mark.parametrize("record,expected", [
    ({"mode": "rd"}, "incomplete RD-RoPE metadata (mode='rd'): mode rd needs offset and first_index; missing: "
                     "offset, first_index"),
    ({"mode": "rd", "offset": "2.0"}, "mode rd needs offset and first_index; missing: first_index"),
    ({"offset": "2.0", "first_index": "0"}, "incomplete RD-RoPE metadata (first_index='0', offset='2.0'): without "
                                            "a mode the positions it was trained with are unknown; missing: mode"),
    ({"mode": "rd", "offset": "2.0", "first_index": "0", "first": "1"}, "unknown field(s) first")])
def test_an_incomplete_lora_record_is_refused(healthy, ref_files, record, expected):
    name = _lora(healthy, f"partial_{'_'.join(record)}.safetensors", {P + k: v for k, v in record.items()})
    for mode in ("auto", "rd", "vanilla"):
        msg = error_of(healthy, _graph(ref_files, "partial", rdrope={"mode": mode, "lora_name": name}).prompt())
        assert f"Mv2ID RD-RoPE: the LoRA '{name}' records RD-RoPE settings this pack cannot use: " in msg, msg
        assert expected in msg, msg
        assert "Re-save the file with mv2id-train (it writes the whole record), or set lora_name to none" in msg
    assert not _lines(healthy, f"recorded in the LoRA {name}")
    assert healthy.alive()


def test_a_complete_record_says_the_nodes_settings_are_not_used(comfy, ref_files):
    name = _lora(comfy, "vanilla_record.safetensors", {P + "mode": "vanilla"})
    plain = run_latent(comfy, _graph(ref_files, "honest_plain", rdrope={"mode": "vanilla"}), "honest_plain")
    assert _lines(comfy, "RD-RoPE: offset, first_index: no effect: vanilla positions do not use it")
    rec = run_latent(comfy, _graph(ref_files, "honest_rec", rdrope={"mode": "rd", "offset": 5.0,
                                                                    "lora_name": name}), "honest_rec")
    assert torch.equal(rec, plain)                     # the record's vanilla positions, not the node's rd
    assert _lines(comfy, f"RD-RoPE: vanilla positions: recorded in the LoRA {name}")
    assert _lines(comfy, f"RD-RoPE: mode, offset, first_index: no effect: the settings recorded in the LoRA {name} "
                         f"are used")
    g = _graph(ref_files, "honest_rec2", rdrope={"mode": "auto", "lora_name": name})
    _, texts = run_with_node_texts(comfy, g.prompt())
    node = next(nid for nid, n in g.nodes.items() if n["class_type"] == "Mv2IDRDRoPE")
    assert texts.get(node) == [f"mode, offset, first_index: no effect: the settings recorded in the LoRA {name} are "
                               f"used"], texts


@pytest.mark.parametrize("inputs,inert,changed,expected", [
    ({"ref_start": 0.3, "ref_end": 0.3}, "ref_cfg", {"ref_cfg": 9.0},
     "Sampler: ref_cfg: no effect: the reference window ref_start 0.3 .. ref_end 0.3 holds no step of the 2 steps"),
    ({"ref_start": 0.5, "ref_end": 0.5, "outside_window": "no_cfg"}, "text_cfg", {"text_cfg": 2.0},
     "Sampler: text_cfg: no effect: outside_window no_cfg runs only the positive pass outside the window"),
    ({"ref_cfg": 1.0, "ref_start": 0.0, "ref_end": 0.5}, "ref_start, ref_end", {"ref_end": 1.0},
     "Sampler: ref_start, ref_end: no effect: ref_cfg 1 turns reference guidance off"),
    ({"ref_start": 0.0, "ref_end": 1.0, "outside_window": "no_cfg"}, "outside_window", {"outside_window": "text_cfg"},
     "Sampler: outside_window: no effect: the reference window ref_start 0 .. ref_end 1 covers every step (all 2)")])
def test_a_setting_that_makes_an_input_inert_says_so_and_the_input_is_inert(comfy, ref_files, inputs, inert, changed,
                                                                             expected):
    g = _graph(ref_files, "inert_a", **inputs)
    entry, texts = run_with_node_texts(comfy, g.prompt())
    a = latent(comfy, entry, "inert_a")
    assert _lines(comfy, expected), comfy.log_tail(40)
    sampler = next(nid for nid, n in g.nodes.items() if n["class_type"] == "Mv2IDSampler")
    shown = expected.split("Sampler: ", 1)[1]
    assert any(shown in t for t in texts.get(sampler, [])), texts      # on the node in the page too
    b = run_latent(comfy, _graph(ref_files, "inert_b", **{**inputs, **changed}), "inert_b")
    assert torch.equal(a, b), f"{inert} changed the result"


def test_the_guider_says_a_zero_length_window_ignores_ref_cfg(comfy, ref_files):
    g = Graph()
    model, _, cond = conditioning(g, ref_files)
    guider = g.add("Mv2IDGuider", model=model, positive=cond[0], negative_text=cond[1], negative_img_text=cond[2],
                   text_cfg=7.5, ref_cfg=5.0, ref_start=0.25, ref_end=0.25)
    lat = g.add("SamplerCustomAdvanced", noise=g.add("RandomNoise", noise_seed=3), guider=guider,
                sampler=g.add("KSamplerSelect", sampler_name="euler"),
                sigmas=g.add("BasicScheduler", model=model, scheduler="simple", steps=2, denoise=1.0),
                latent_image=cond[3])
    g.add("Mv2IDTestSaveLatent", samples=lat[0], filename="guider_inert")
    _, texts = run_with_node_texts(comfy, g.prompt())
    said = ("ref_cfg: no effect: the reference window ref_start 0.25 .. ref_end 0.25 holds no step, so reference "
            "guidance never runs: set ref_end above ref_start to use it")
    assert _lines(comfy, f"Guider: {said}") and texts.get(guider.nid) == [said], texts


def test_region_mask_says_when_it_hides_nothing_or_another_share(comfy, ref_files):
    """A ratio that rounds to no block of the image (one 64 px block on a 40x56 reference) passes the image
    unchanged: the log and the node say so and which inputs that makes inert. Four 32 px blocks cannot hide
    60 %: the log says what they hide."""
    g = Graph()
    rm = g.add("Mv2IDRegionMask", images=g.add("LoadImage", image=ref_files[0])[0], ratio=0.4, block_size=64,
               seed=3, fill=0.5, complementary=False)
    g.add("PreviewImage", images=rm[0])
    coarse = g.add("Mv2IDRegionMask", images=g.add("LoadImage", image=ref_files[0])[0], ratio=0.6, block_size=32,
                   seed=3, fill=0.5, complementary=False)
    g.add("PreviewImage", images=coarse[0])
    _, texts = run_with_node_texts(comfy, g.prompt())
    assert _lines(comfy, "Region Mask: hides 2 of 4 blocks of 32 px on the 40x56 image (50 %), not ratio 0.6: lower "
                         "block_size for a share closer to it")
    why = ("no effect: ratio 0.4 of 1 block of 64 px on the 40x56 image hides no block, the images pass unchanged: "
           "lower block_size or raise ratio to hide something")
    assert _lines(comfy, f"Region Mask: seed, fill, complementary: {why}")
    node = next(nid for nid, n in g.nodes.items() if n["class_type"] == "Mv2IDRegionMask")
    assert texts.get(node) == [f"seed, fill, complementary: {why}"], texts
