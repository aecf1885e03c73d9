"""mv2id-train: region-masked RD-RoPE fine-tuning of Wan 2.1 on a latent cache (LoRA or full).

    mv2id-train --cache CACHE --model wan2.1_t2v_1.3B_fp16.safetensors --out runs/me [options]
    torchrun --nproc_per_node 8 -m mv2id_train.train --cache ... --model ... --out ...   (FSDP2)

Flow matching as Wan trains (mv2id_train.flow), RD-RoPE active through the inference patch's
own rope_encode replacement, references joined on the time axis exactly as the Mv2ID Reference
Conditioning node joins them (time_dim_concat), loss on video tokens only. Writes
OUT/<name>.safetensors (a LoRA for LoraLoaderModelOnly, or a full diffusion model with --full),
OUT/log.jsonl (one line per step), and OUT/checkpoints/step-N/ every --save-every steps;
--resume auto (default) continues from the newest checkpoint.

Which base model (--model):
  Phantom-Wan (e.g. Phantom-Wan-1_3B_fp16.safetensors, Phantom-Wan-14B_fp16.safetensors): a full
    fine-tune of Wan 2.1 T2V that already reads clean reference frames joined on the time axis.
    A LoRA then only has to learn the RD-RoPE layout and to cope with masked views. Start here.
  Wan 2.1 T2V (wan2.1_t2v_1.3B/14B): the paper's base. It has never seen reference frames and
    must learn reference conditioning from scratch, as the paper did on ~22K curated videos with
    the 14B model: expect many times the data and GPU time of the Phantom-Wan route.
  See docs/training.md ("Which base to train from") for the estimates. The output records the
  base's file name (mv2id.train.base_model) beside the RD-RoPE settings.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

import torch
import torch.distributed as dist

from mv2id_core.cli import args as A
from mv2id_core.errors import Mv2IDError, UsageError
from mv2id_core import rdrope
from mv2id_core.rdrope import RDRoPEConfig, config_to_metadata

from . import flow, lora as lora_mod, progress_bar, wan
from .cache_format import CachedDataset
from .files import append_jsonl, read_jsonl, write_jsonl

PROG = "mv2id-train"


@dataclass
class TrainConfig:
    cache: str
    model: str
    out: str
    name: str = "mv2id_lora"
    steps: int = 1000
    batch_size: int = 1                 # per process, per micro-step
    grad_accum: int = 1
    lr: float = 1e-4
    warmup: int = 100
    schedule: str = "constant"
    min_lr_ratio: float = 0.0
    weight_decay: float = 0.01
    betas: tuple = (0.9, 0.999)
    max_grad_norm: float = 1.0
    shift: float = 5.0
    loss_weighting: str = "none"
    # zero references (the guider's third pass) for 10% of samples, drawn per sample: Concat-ID's
    # published rate (ref_image_dropout 0.1, references replaced by zeros); ConsisID uses 0.05;
    # Phantom's own rate is unpublished. 0 leaves the zero-reference condition untrained.
    ref_dropout: float = 0.1
    seed: int = 0
    full: bool = False
    rank: int = 32
    alpha: float | None = None
    targets: tuple = lora_mod.DEFAULT_TARGETS
    # RD-RoPE settings: their defaults and allowed values are mv2id_core.rdrope's (written once, there)
    rdrope_mode: str = RDRoPEConfig.mode
    rdrope_offset: float = RDRoPEConfig.offset
    rdrope_first_index: int = RDRoPEConfig.first_index
    precision: str = "auto"             # auto | fp32 | bf16
    gradient_checkpointing: bool = True
    save_every: int = 500
    keep_checkpoints: int = 2
    resume: str = "auto"                # auto | none | <checkpoint dir>
    save_dtype: str = "bf16"
    log_every: int = 1
    stop_after: int = 0                 # >0: leave after this many steps of this run (resume later)
    progress: bool = True
    extra: dict = field(default_factory=dict)

    @property
    def rdrope(self) -> RDRoPEConfig:
        return RDRoPEConfig(self.rdrope_mode, float(self.rdrope_offset), int(self.rdrope_first_index))


# ----------------------------------------------------------------------------- distributed
class Dist:
    def __init__(self):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.cuda = torch.cuda.is_available()
        self.device = torch.device(f"cuda:{self.local_rank}" if self.cuda else "cpu")
        if self.cuda:
            torch.cuda.set_device(self.device)
        self.enabled = self.world > 1
        if self.enabled and not dist.is_initialized():
            dist.init_process_group("nccl" if self.cuda else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def mean(self, value: float) -> float:
        if not self.enabled:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self.device if self.cuda else "cpu")
        dist.all_reduce(t)
        return float(t.item()) / self.world

    def barrier(self):
        if self.enabled:
            dist.barrier()

    def close(self):
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()


def _shard(model, d: Dist, lora_layers: list[str]):
    """FSDP2: every LoRA pair, the fp32 patch embedding and every block get their own group."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    mesh = init_device_mesh("cuda" if d.cuda else "cpu", (d.world,))
    for name in lora_layers:
        lin = model.get_submodule(name)
        fully_shard(lin.lora_down, mesh=mesh)
        fully_shard(lin.lora_up, mesh=mesh)
    fully_shard(model.patch_embedding, mesh=mesh)
    for block in model.blocks:
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


# ----------------------------------------------------------------------------- the trainer
class Trainer:
    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.d = Dist()
        self.out = Path(cfg.out)
        if self.d.main:
            (self.out / "checkpoints").mkdir(parents=True, exist_ok=True)
        self.d.barrier()
        precision = cfg.precision if cfg.precision != "auto" else ("bf16" if self.d.cuda else "fp32")
        # LoRA in bf16 runs the frozen model in bf16 exactly as ComfyUI runs it (bf16 weights and
        # activations, fp32 patch embedding) with fp32 LoRA weights; full fine-tuning in bf16 keeps
        # fp32 master weights under autocast.
        self.autocast = precision == "bf16" and cfg.full
        base_dtype = torch.bfloat16 if (precision == "bf16" and not cfg.full) else torch.float32
        self.input_dtype = base_dtype
        self.ds = CachedDataset(cfg.cache)
        self.ds.get(0)      # a cache the model cannot use is refused before the (large) model is loaded
        self.model, self.model_config = wan.load_wan(cfg.model, dtype=base_dtype, device=self.d.device)
        wan.install_rdrope(self.model, cfg.rdrope)
        self.latent_format = wan.latent_format()
        self.lora_layers = []
        if cfg.full:
            for p in self.model.parameters():
                p.requires_grad_(True)
        else:
            self.lora_layers = lora_mod.add_lora(self.model, cfg.rank, cfg.alpha, cfg.targets, seed=cfg.seed)
        if cfg.gradient_checkpointing:
            wan.enable_gradient_checkpointing(self.model)
        self.model.train()
        if self.d.enabled:
            self.model = _shard(self.model, self.d, self.lora_layers)
        self.trainable = [n for n, p in self.model.named_parameters() if p.requires_grad]
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay,
                                     foreach=False)
        self.options = wan.transformer_options()
        self.step = 0
        self.global_batch = self.d.world * cfg.batch_size * cfg.grad_accum

    # --------------------------------------------------------------------- data
    def sample_index(self, p: int) -> tuple[int, int]:
        """Position p of the sample stream -> (dataset index, epoch): a fresh permutation per epoch."""
        n = len(self.ds)
        epoch = p // n
        if getattr(self, "_perm", (None,))[0] != epoch:
            g = torch.Generator().manual_seed(self.cfg.seed * 1_000_033 + epoch)
            self._perm = (epoch, torch.randperm(n, generator=g))
        return int(self._perm[1][p % n]), epoch

    def micro_batch(self, step: int, micro: int):
        cfg, d = self.cfg, self.d
        base = step * self.global_batch + micro * d.world * cfg.batch_size + d.rank * cfg.batch_size
        xs, refs, ctxs, sig, noises = [], [], [], [], []
        for j in range(cfg.batch_size):
            p = base + j
            i, epoch = self.sample_index(p)
            s = self.ds.get(i, draw=epoch)
            x0 = self.latent_format.process_in(s["video"].float()[None])[0]
            r = self.latent_format.process_in(s["refs"].float()[None])[0]
            sigma, noise = flow.draw(cfg.seed, step, p, x0.shape, cfg.shift)
            if cfg.ref_dropout > 0:
                g = flow.sample_generator(cfg.seed + 1, step, p)
                if float(torch.rand(1, generator=g)) < cfg.ref_dropout:
                    r = torch.zeros_like(r)     # "zero references" in model space, as the guider's third pass
            xs.append(x0), refs.append(r), ctxs.append(s["context"].float()), sig.append(sigma), noises.append(noise)
        shapes = {tuple(x.shape) for x in xs} | {("r",) + tuple(r.shape) for r in refs}
        if len(shapes) > 2:
            raise ValueError(f"samples of one batch differ in shape {sorted(shapes)}: use --batch-size 1 with "
                             f"--grad-accum, or cache all clips at one size")
        L = max(c.shape[0] for c in ctxs)
        ctx = torch.stack([torch.nn.functional.pad(c, (0, 0, 0, L - c.shape[0])) for c in ctxs])
        dev = d.device
        return (torch.stack(xs).to(dev), torch.stack(refs).to(dev), ctx.to(dev), torch.stack(sig).to(dev),
                torch.stack(noises).to(dev))

    # --------------------------------------------------------------------- one step
    def train_step(self, step: int) -> float:
        cfg = self.cfg
        lr = flow.lr_at(step, cfg.lr, cfg.warmup, cfg.schedule, cfg.steps, cfg.min_lr_ratio)
        for g in self.opt.param_groups:
            g["lr"] = lr
        self.opt.zero_grad(set_to_none=True)
        total = 0.0
        for micro in range(cfg.grad_accum):
            x0, refs, ctx, sigma, noise = self.micro_batch(step, micro)
            x_t, target = flow.noised(x0, noise, sigma)
            if self.d.enabled and hasattr(self.model, "set_requires_gradient_sync"):
                self.model.set_requires_gradient_sync(micro == cfg.grad_accum - 1)
            with torch.autocast(self.d.device.type, dtype=torch.bfloat16, enabled=self.autocast):
                dt = self.input_dtype
                pred = wan.model_forward(self.model, x_t.to(dt), sigma, ctx.to(dt), refs.to(dt), self.options)
            loss = flow.loss_fn(pred, target, sigma, cfg.loss_weighting) / cfg.grad_accum
            loss.backward()
            total += float(loss.detach())
        params = [p for p in self.model.parameters() if p.requires_grad]
        if cfg.max_grad_norm and cfg.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        self.opt.step()
        return self.d.mean(total), lr

    # --------------------------------------------------------------------- state
    def _full_state(self):
        from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict,
                                                             get_optimizer_state_dict)
        opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
        msd = get_model_state_dict(self.model, options=opts)
        osd = get_optimizer_state_dict(self.model, self.opt, options=opts)
        keep = set(self.trainable)
        return {k: v for k, v in msd.items() if k in keep}, osd

    def trainable_state(self) -> dict:
        return self._full_state()[0]

    def save_checkpoint(self, step: int):
        msd, osd = self._full_state()
        if self.d.main:
            ck = self.out / "checkpoints" / f"step-{step:07d}"
            tmp = ck.with_name(ck.name + ".tmp")
            tmp.mkdir(parents=True, exist_ok=True)
            tensors = {f"model/{k}": v.contiguous() for k, v in msd.items()}
            for fqn, st in osd["state"].items():
                for k, v in st.items():
                    tensors[f"optim/{fqn}/{k}"] = (v if torch.is_tensor(v) else torch.tensor(v)).contiguous()
            groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in osd["param_groups"]]
            lora_mod.save_safetensors(tensors, tmp / "state.safetensors",
                                      {"step": str(step), "param_groups": json.dumps(groups),
                                       "config": json.dumps(self._config_record())})
            self._save_output(msd, tmp / f"{self.cfg.name}.safetensors", step)
            if ck.exists():
                import shutil
                shutil.rmtree(ck)
            os.replace(tmp, ck)
            self._prune()
        self.d.barrier()

    def _prune(self):
        import shutil
        cks = sorted(p for p in (self.out / "checkpoints").glob("step-*") if not p.name.endswith(".tmp"))
        for p in cks[:-max(1, self.cfg.keep_checkpoints)]:
            shutil.rmtree(p, ignore_errors=True)

    def load_checkpoint(self, ck: Path) -> int:
        from safetensors import safe_open
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict, set_optimizer_state_dict
        with safe_open(str(ck / "state.safetensors"), "pt") as f:
            meta = f.metadata()
            msd, state = {}, {}
            for key in f.keys():
                kind, rest = key.split("/", 1)
                if kind == "model":
                    msd[rest] = f.get_tensor(key)
                else:
                    fqn, k = rest.rsplit("/", 1)
                    state.setdefault(fqn, {})[k] = f.get_tensor(key)
        self._check_resume(ck, json.loads(meta.get("config", "{}")))
        groups = json.loads(meta["param_groups"])
        for g in groups:
            if "betas" in g:
                g["betas"] = tuple(g["betas"])
        opts = StateDictOptions(full_state_dict=True, strict=False)
        set_model_state_dict(self.model, msd, options=opts)
        set_optimizer_state_dict(self.model, self.opt, {"state": state, "param_groups": groups}, options=opts)
        return int(meta["step"])

    # settings a resumed run must share with the checkpoint (the rest, e.g. --steps, may change)
    RESUME_MUST_MATCH = ("global_batch", "lr", "warmup", "schedule", "min_lr_ratio", "weight_decay", "betas",
                         "max_grad_norm", "shift", "loss_weighting", "ref_dropout", "seed", "full", "rank", "alpha",
                         "targets", "rdrope_mode", "rdrope_offset", "rdrope_first_index")

    def _check_resume(self, ck: Path, recorded: dict) -> None:
        now = self._config_record()
        changes = A.settings_changes({k: recorded.get(k) for k in self.RESUME_MUST_MATCH},
                                     {k: now.get(k) for k in self.RESUME_MUST_MATCH})
        if changes:
            raise UsageError(f"{ck} was trained with other settings ({'; '.join(changes)}): resume with the same "
                             f"settings, or start over with --resume none (or a new --out)")

    def latest_checkpoint(self) -> Path | None:
        cks = sorted(p for p in (self.out / "checkpoints").glob("step-*")
                     if not p.name.endswith(".tmp") and (p / "state.safetensors").is_file())
        return cks[-1] if cks else None

    def _config_record(self) -> dict:
        c = asdict(self.cfg)
        c["targets"] = list(c["targets"])
        c["betas"] = list(c["betas"])
        c["world_size"] = self.d.world
        c["global_batch"] = self.global_batch
        return c

    def _save_output(self, msd: dict, path: Path, step: int):
        cfg = self.cfg
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[cfg.save_dtype]
        meta = {**config_to_metadata(cfg.rdrope), "mv2id.train.step": str(step),
                "mv2id.train.base_model": os.path.basename(cfg.model),
                "mv2id.train.shift": repr(cfg.shift), "mv2id.train.global_batch": str(self.global_batch),
                "mv2id.train.ref_dropout": repr(cfg.ref_dropout)}
        if cfg.full:
            tensors = {k: v.to(dtype).contiguous() for k, v in msd.items()}
            meta["mv2id.train.kind"] = "full"
        else:
            alphas = {n: float(cfg.rank if cfg.alpha is None else cfg.alpha) for n in self.lora_layers}
            tensors = lora_mod.comfy_lora_state_dict(msd, alphas, dtype)
            meta.update({"mv2id.train.kind": "lora", "mv2id.lora.rank": str(cfg.rank),
                         "mv2id.lora.alpha": repr(float(cfg.rank if cfg.alpha is None else cfg.alpha)),
                         "mv2id.lora.targets": ",".join(cfg.targets)})
        lora_mod.save_safetensors(tensors, path, meta)

    def save_output(self, step: int) -> Path | None:
        msd = self.trainable_state() if not self.cfg.full else self._full_model_state()
        path = self.out / f"{self.cfg.name}.safetensors"
        if self.d.main:
            self._save_output(msd, path, step)
        self.d.barrier()
        return path

    def _full_model_state(self):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
        return get_model_state_dict(self.model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))

    # --------------------------------------------------------------------- the loop
    def run(self) -> list[dict]:
        cfg = self.cfg
        start = 0
        if cfg.resume not in ("none", ""):
            ck = self.latest_checkpoint() if cfg.resume == "auto" else Path(cfg.resume)
            if ck is not None:
                start = self.load_checkpoint(ck)
                if self.d.main:
                    print(f"{PROG}: resumed from {ck} at step {start}", flush=True)
        log_path = self.out / "log.jsonl"
        if self.d.main and start == 0 and log_path.exists():
            log_path.unlink()
        if self.d.main and start > 0 and log_path.exists():   # drop lines past the checkpoint
            write_jsonl(log_path, [r for r in read_jsonl(log_path) if r["step"] < start])
        bar = progress_bar(self.d.main and cfg.progress, cfg.steps, start, PROG, "step")
        records = []
        t0 = time.perf_counter()
        end = cfg.steps if not cfg.stop_after else min(cfg.steps, start + cfg.stop_after)
        for step in range(start, end):
            loss, lr = self.train_step(step)
            rec = {"step": step, "loss": loss, "lr": lr, "time": round(time.perf_counter() - t0, 4)}
            records.append(rec)
            if self.d.main:
                append_jsonl(log_path, [rec])
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}")
                elif cfg.log_every and step % cfg.log_every == 0:
                    print(json.dumps(rec), flush=True)
            if cfg.save_every and (step + 1) % cfg.save_every == 0 and step + 1 < cfg.steps:
                self.save_checkpoint(step + 1)
        if bar is not None:
            bar.close()
        if end < cfg.steps:
            self.save_checkpoint(end)
            if self.d.main:
                print(json.dumps({"stopped_at": end, "steps": cfg.steps, "resume": "run the same command again"}), flush=True)
            return records
        out = self.save_output(cfg.steps)
        if self.d.main:
            print(json.dumps({"output": str(out), "steps": cfg.steps, "log": str(log_path)}), flush=True)
        return records


# ----------------------------------------------------------------------------- CLI
DEFAULTS = {f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}


def build_parser() -> argparse.ArgumentParser:
    """The CLI; every default comes from TrainConfig (written once, there)."""
    D = DEFAULTS
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=A.HelpFormatter)
    ap.add_argument("--cache", required=True, type=A.existing_dir, help="latent cache folder (mv2id-cache)")
    ap.add_argument("--model", required=True, type=A.existing_file,
                    help="base diffusion model (.safetensors, fp16/bf16/fp32): Phantom-Wan (recommended) or Wan 2.1 "
                         "T2V, see 'Which base model' above")
    ap.add_argument("--out", required=True, type=A.out_dir, help="output folder (LoRA, log.jsonl, checkpoints/)")
    ap.add_argument("--name", default=D["name"], help="output file name (without .safetensors)")
    ap.add_argument("--steps", type=A.positive_int, default=D["steps"], help="optimizer steps")
    ap.add_argument("--batch-size", type=A.positive_int, default=D["batch_size"], help="samples per process per micro-step")
    ap.add_argument("--grad-accum", type=A.positive_int, default=D["grad_accum"], help="micro-steps per optimizer step")
    ap.add_argument("--lr", type=A.positive_float, default=D["lr"], help="AdamW learning rate")
    ap.add_argument("--warmup", type=A.nonnegative_int, default=D["warmup"], help="linear warm-up steps")
    ap.add_argument("--schedule", choices=["constant", "cosine"], default=D["schedule"], help="after the warm-up")
    ap.add_argument("--min-lr-ratio", type=A.fraction, default=D["min_lr_ratio"], help="cosine: end at this x lr")
    ap.add_argument("--weight-decay", type=A.nonnegative_float, default=D["weight_decay"], help="AdamW weight decay")
    ap.add_argument("--max-grad-norm", type=A.nonnegative_float, default=D["max_grad_norm"], help="0 disables clipping")
    ap.add_argument("--shift", type=A.positive_float, default=D["shift"], help="timestep shift (Wan: 5)")
    ap.add_argument("--loss-weighting", choices=list(flow.LOSS_WEIGHTINGS), default=D["loss_weighting"],
                    help="bell: DiffSynth's per-timestep weight")
    ap.add_argument("--ref-dropout", type=A.fraction, default=D["ref_dropout"],
                    help="probability of zero references for a sample: trains the zero-reference condition that "
                         "the guider's third pass uses (Concat-ID's rate; see docs/training.md)")
    ap.add_argument("--seed", type=A.nonnegative_int, default=D["seed"], help="every random draw derives from it")
    ap.add_argument("--full", action="store_true", default=D["full"], help="full fine-tuning instead of LoRA")
    ap.add_argument("--rank", type=A.positive_int, default=D["rank"], help="LoRA rank")
    ap.add_argument("--alpha", type=A.positive_float, default=D["alpha"], help="LoRA alpha (default: the rank)")
    ap.add_argument("--targets", default=",".join(D["targets"]),
                    help="comma-separated layer-name suffixes that get LoRA")
    ap.add_argument("--rdrope-mode", choices=list(rdrope.MODES), default=D["rdrope_mode"],
                    help="reference positions: rd (the paper) or vanilla (Phantom's)")
    ap.add_argument("--rdrope-offset", type=A.checked(A.number(float), rdrope.check_offset),
                    default=D["rdrope_offset"], help="temporal index of the references after the last video frame "
                    "(%g to %g)" % rdrope.OFFSET_RANGE)
    ap.add_argument("--rdrope-first-index", type=A.checked(A.number(int), rdrope.check_first_index),
                    default=D["rdrope_first_index"], help="spatial shift k of the first reference (%d to %d)"
                    % rdrope.FIRST_INDEX_RANGE)
    ap.add_argument("--precision", choices=["auto", "fp32", "bf16"], default=D["precision"],
                    help="auto: bf16 on CUDA, fp32 on CPU")
    ap.add_argument("--no-gradient-checkpointing", dest="gradient_checkpointing", action="store_false")
    ap.add_argument("--save-every", type=A.nonnegative_int, default=D["save_every"],
                    help="checkpoint every N steps (0: only the end)")
    ap.add_argument("--keep-checkpoints", type=A.positive_int, default=D["keep_checkpoints"], help="newest ones kept")
    ap.add_argument("--stop-after", type=A.nonnegative_int, default=D["stop_after"],
                    help="leave (with a checkpoint) after this many steps; rerun the same command to continue")
    ap.add_argument("--resume", default=D["resume"], help="auto (newest checkpoint in OUT), none, or a checkpoint folder")
    ap.add_argument("--save-dtype", choices=["bf16", "fp16", "fp32"], default=D["save_dtype"], help="of the output file")
    ap.add_argument("--no-progress", dest="progress", action="store_false")
    return ap


def config_from_args(argv=None) -> TrainConfig:
    a = build_parser().parse_args(argv)
    kw = vars(a)
    kw["targets"] = tuple(t.strip() for t in kw["targets"].split(",") if t.strip())
    if not kw["targets"]:
        build_parser().error("argument --targets: name at least one layer-name suffix, e.g. self_attn.q")
    for k in ("cache", "model", "out"):
        kw[k] = str(kw[k])
    return TrainConfig(**kw)


def main(argv=None) -> int:
    cfg = config_from_args(argv)
    try:
        trainer = Trainer(cfg)
        try:
            trainer.run()
        finally:
            trainer.d.close()
    except (Mv2IDError, OSError) as e:
        print(A.error_line(PROG, e), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
