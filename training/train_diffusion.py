"""Train the text-conditioned pixel diffusion model on the emoji corpus.

    python -m training.train_diffusion --corpus .cache/corpus/emoji32.npz --out .cache/runs/emoji32 --max-minutes 80

A diffusers `UNet2DConditionModel` in pixel space, epsilon-prediction on a 1000-step DDPM schedule
(Ho et al. 2020; squaredcos_cap_v2 betas, Nichol & Dhariwal 2021), cross-attending to the frozen
MiniLM text encoder (`editing.models.minilm`): its pooled sentence embedding as one context token
(B, 1, 384) or its token states (B, 16, 384). Caption encodings are computed once and cached next
to the corpus. 10 % caption dropout to the empty caption "" trains the unconditional branch for
classifier-free guidance (Ho & Salimans 2022). EMA weights with warm-up (diffusers' EMAModel).
Horizontal flips only where the corpus marks an emoji as flippable (no text, arrows or flags).

The whole corpus sits in memory as one uint8 array: no file I/O per step. Resumable checkpoints
(`<out>/ckpt.pt`), a CSV loss log (`<out>/loss.csv`), a tqdm bar and a sample grid every few
minutes (`<out>/samples/`). Touch `<out>/STOP` to end a run cleanly (checkpoint written).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from training import open_corpus, show_defaults

# Captions of the logged grids: training emoji in several styles (evaluate.py's grid adds held-out ones).
GRID_CAPTIONS = [
    "grinning face, twemoji style",
    "red apple, google style",
    "red heart, fluent flat style",
    "smiling face with heart-eyes, noto style",
    "dog face, fluent 3d style",
    "sun, twemoji style",
    "pile of poo, google style",
    "thumbs up, noto style",
]


@dataclass
class TrainConfig:
    corpus: str = ".cache/corpus/emoji32.npz"
    out: str = ".cache/runs/emoji32"
    resolution: int = 32
    block_out_channels: tuple[int, ...] = (32, 64, 96, 128)
    attention: tuple[bool, ...] = (False, False, True, True)  # cross/self-attention per resolution level
    layers_per_block: int = 1
    attention_head_dim: int = 16
    norm_num_groups: int = 16
    conditioning: Literal["pooled", "tokens"] = "pooled"
    max_length: int = 16
    # the caption also added to the time embedding (diffusers' addition_embed_type "text": an
    # attention pool of the context, a projection and a LayerNorm, as in unCLIP and DeepFloyd IF),
    # so it reaches every ResNet block at every resolution, not only the attention levels. With
    # one pooled context token, cross-attention's softmax is over one key: the caption enters there
    # only as a per-channel offset, and not at all at the levels without attention. On by default:
    # at equal compute it made the model rely on the caption 1.5x as much on unseen emoji
    # (assets/models/emoji/README.md, "The caption in the time embedding: measured").
    text_time_embedding: bool = True
    beta_schedule: str = "squaredcos_cap_v2"
    # shift of the schedule's log-SNR by -2 log(schedule_shift) at every step (Hoogeboom et al. 2023,
    # "simple diffusion": a model at twice the resolution sees 4x the SNR in its coarse shapes at the
    # same step; shift 2 gives them the 32 px schedule's SNR at 64 px). 1: none. Stored as the
    # scheduler's trained_betas, so the shipped scheduler and the engine (VPSchedule reads
    # alphas_cumprod) follow it.
    schedule_shift: float = 1.0
    batch_size: int = 64
    lr: float = 5e-4
    warmup_steps: int = 250
    weight_decay: float = 0.01
    lr_decay: Literal["constant", "cosine"] = "cosine"  # over max_steps, or over max_minutes when only that is set
    min_lr_ratio: float = 0.1
    caption_dropout: float = 0.1
    # Min-SNR-gamma loss weighting (Hang et al. 2023); None or 0: the plain epsilon loss. 5 beat the plain
    # loss at equal compute on this corpus (assets/models/emoji/README.md, "Min-SNR weighting: measured").
    snr_gamma: float | None = 5.0
    ema_max_decay: float = 0.999
    ema_power: float = 0.75  # EMA warm-up: decay = 1 - (1 + step) ** -power, capped at ema_max_decay
    max_steps: int | None = None
    max_minutes: float | None = None  # in all, over resumed runs (the cosine decay spans it)
    run_minutes: float | None = None  # this invocation only: stop (checkpoint written) after this long
    init_from: str | None = None  # warm start: a UNet folder or EMA weights to begin from (no checkpoint yet)
    checkpoint_minutes: float = 4.0
    sample_minutes: float = 8.0
    log_every: int = 25
    seed: int = 0
    device: str = "auto"
    bf16: bool = True  # autocast to bf16 on CUDA only; CPU trains in fp32
    channels_last: bool = False  # the UNet's convolutions in NHWC (`training.gpu_kit probe` times it on the GPU)
    # torch.compile of the UNet's forward (and so its backward); the first steps compile. The backend
    # is "inductor" for real runs; tests check the tracing with "aot_eager" (no code generation).
    compile: bool = False
    compile_backend: str = "inductor"
    threads: int = 2
    progress: bool = True
    grid_captions: list[str] = field(default_factory=lambda: list(GRID_CAPTIONS))


# --- model ---------------------------------------------------------------------------------------


TEXT_PATH = "add_embedding."  # the state-dict prefix of the caption's time-embedding path
LAYOUT_CSV = "white_area.csv"  # in <out>/samples: the logged grids' white_area, by step (gpu_kit returns it)


def build_unet(cfg: TrainConfig):
    """The UNet. With `text_time_embedding`, the weights it shares with the UNet without it are
    the same for the same seed (the base is built first and copied in), so an A/B of the two differs
    only in the added path."""
    if not cfg.text_time_embedding:
        return _unet(cfg)
    base = _unet(cfg).state_dict()
    unet = _unet(cfg, addition_embed_type="text")
    missing, unexpected = unet.load_state_dict(base, strict=False)
    assert not unexpected and all(k.startswith(TEXT_PATH) for k in missing), (missing, unexpected)
    return unet


def _unet(cfg: TrainConfig, **extra):
    from diffusers import UNet2DConditionModel

    down = tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in cfg.attention)
    up = tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(cfg.attention))
    return UNet2DConditionModel(
        **extra,
        sample_size=cfg.resolution,
        in_channels=3,
        out_channels=3,
        down_block_types=down,
        up_block_types=up,
        block_out_channels=tuple(cfg.block_out_channels),
        layers_per_block=cfg.layers_per_block,
        cross_attention_dim=384,
        attention_head_dim=cfg.attention_head_dim,
        norm_num_groups=cfg.norm_num_groups,
    )


def build_scheduler(cfg: TrainConfig):
    from diffusers import DDPMScheduler

    base = DDPMScheduler(num_train_timesteps=1000, beta_schedule=cfg.beta_schedule, prediction_type="epsilon", clip_sample=True)
    if cfg.schedule_shift == 1.0:
        return base
    return DDPMScheduler.from_config(base.config, trained_betas=shifted_betas(base.alphas_cumprod, cfg.schedule_shift).tolist())


def shifted_betas(alphas_cumprod: torch.Tensor, shift: float) -> torch.Tensor:
    """Betas whose alpha_bar has log-SNR log(ab / (1 - ab)) - 2 log(shift) at every step."""
    ab = alphas_cumprod.double()
    log_snr = torch.log(ab) - torch.log1p(-ab) - 2 * math.log(shift)
    ab_shifted = torch.sigmoid(log_snr)
    prev = torch.cat([torch.ones(1, dtype=torch.float64), ab_shifted[:-1]])
    return (1 - ab_shifted / prev).clamp(max=0.999).float()


def encode_captions(captions: list[str], conditioning: str, max_length: int = 16, batch: int = 256) -> torch.Tensor:
    """Frozen MiniLM: (N, 1, 384) pooled or (N, max_length, 384) token states, float32 on CPU."""
    from editing.models.minilm import shared_minilm

    enc = shared_minilm(max_length)
    out = []
    for i in range(0, len(captions), batch):
        chunk = list(captions[i : i + batch])
        out.append(enc.pooled(chunk)[:, None, :] if conditioning == "pooled" else enc.tokens(chunk)[0])
    return torch.cat(out).float()


def cached_encodings(captions: list[str], cfg: TrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Encodings of the unique captions (cached on disk beside the corpus) and the index of each row."""
    uniq, inverse = np.unique(np.asarray(captions), return_inverse=True)
    key = hashlib.sha1(("\n".join(uniq.tolist()) + cfg.conditioning + str(cfg.max_length)).encode()).hexdigest()[:12]
    path = Path(cfg.corpus).with_name(f"captions_{cfg.conditioning}_{key}.pt")
    if path.exists():
        enc = torch.load(path)
    else:
        enc = encode_captions(uniq.tolist(), cfg.conditioning, cfg.max_length)
        if Path(cfg.corpus).parent.exists():
            torch.save(enc, path)
    return enc, torch.from_numpy(inverse.astype(np.int64))


# --- sampling (DDIM + classifier-free guidance, used for the logged grids and the evaluation) -----


@torch.no_grad()
def sample(
    unet,
    scheduler_config: dict,
    cond: torch.Tensor,
    uncond: torch.Tensor,
    guidance_scale: float = 3.0,
    steps: int = 50,
    seed: int = 0,
    resolution: int | None = None,
    batch: int = 64,
) -> np.ndarray:
    """DDIM (Song et al. 2021, eta = 0) with classifier-free guidance through the engine's
    `cfg_denoiser` (at scale 1 one conditional call a step, no unconditional pass); returns uint8
    (B, H, W, 3)."""
    from types import SimpleNamespace

    from diffusers import DDIMScheduler

    from editing.samplers import cfg_denoiser

    device = next(unet.parameters()).device
    dtype = next(unet.parameters()).dtype
    bundle = SimpleNamespace(device=device, dtype=dtype, eps=lambda x, t, c: unet(x, t, c).sample)  # what cfg_denoiser calls
    res = resolution or unet.config.sample_size
    # "trailing" spacing: the first step is t = 999, where pure noise is what the model was trained
    # on (alpha_bar 2e-9), as the engine's own schedule does; diffusers' default "leading" starts at
    # t = 960 (alpha_bar 0.004) from pure noise anyway (Lin et al. 2024, "Common diffusion noise
    # schedules and sample steps are flawed"). On the interim model, 192 held-out samples: KID 1.42
    # trailing against 1.49 leading.
    ddim = DDIMScheduler.from_config(scheduler_config, timestep_spacing="trailing")
    ddim.set_timesteps(steps)
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(cond.shape[0], 3, res, res, generator=g)
    outs = []
    for i in range(0, cond.shape[0], batch):
        x = noise[i : i + batch].to(device)
        eps_fn = cfg_denoiser(bundle, cond[i : i + batch].to(device, dtype), uncond.to(device, dtype), guidance_scale)
        for t in ddim.timesteps:
            x = ddim.step(eps_fn(x, t), t, x).prev_sample
        outs.append(((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy())
    return np.concatenate(outs)


def grid(images: np.ndarray, cols: int = 8, scale: int = 1) -> np.ndarray:
    """uint8 (N, H, W, 3) -> one uint8 grid image, 2-px white gutters, nearest-upscaled by `scale`."""
    import cv2

    n, h, w, _ = images.shape
    rows = math.ceil(n / cols)
    pad = 2
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), 255, np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, cols)
        out[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = im
    if scale > 1:
        out = cv2.resize(out, (out.shape[1] * scale, out.shape[0] * scale), interpolation=cv2.INTER_NEAREST)
    return out


def white_area_shares(images: np.ndarray, level: int = 235) -> np.ndarray:
    """Per image of uint8 (N, H, W, 3): the share of its pixels that are white (every channel >= `level`)."""
    return (images.min(-1) >= level).mean((1, 2))


def white_area(images: np.ndarray, level: int = 235) -> float:
    """Layout of uint8 (N, H, W, 3) images: the mean of `white_area_shares`. Emoji are drawn on white:
    the corpus scores 0.48 at 32 px and 0.49 at 64 px, and only 0.5 % of its images are under 0.1.
    Samples of a model that has not learned the layout fill the frame with texture or tiles: the
    twelfth session's H100 grid scores 0.09 at guidance 3 and 0.22 at 1, the shipped 32 px model's
    grid 0.33, a 40 000-image CPU run's 0.04."""
    return float(white_area_shares(images, level).mean()) if len(images) else float("nan")


def save_png(path: Path, image: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)


# --- training ------------------------------------------------------------------------------------


def load_corpus(path: str, split: str = "train") -> dict[str, np.ndarray]:
    d = open_corpus(path)
    m = d["split"] == split
    return {k: d[k][m] for k in ("images", "captions", "flip")}


def _lr_factor(cfg: TrainConfig, step: int, elapsed_min: float) -> float:
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.lr_decay == "constant":
        return 1.0
    if cfg.max_steps:
        frac = step / cfg.max_steps
    elif cfg.max_minutes:
        frac = elapsed_min / cfg.max_minutes
    else:
        return 1.0
    frac = min(max(frac, 0.0), 1.0)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * frac))


def train(
    cfg: TrainConfig,
    data: dict[str, np.ndarray] | None = None,
    encodings: tuple[torch.Tensor, torch.Tensor] | None = None,
    empty: torch.Tensor | None = None,
    grid_cond: torch.Tensor | None = None,
) -> dict:
    """Train (or resume) and return {"losses": [...], "steps": n, "images_seen": n, "minutes": m}.

    `data` (images uint8 (N, H, W, 3), captions, flip) defaults to the corpus's train split;
    `encodings` = (unique encodings, row -> unique index), `empty` (the "" encoding) and
    `grid_cond` (the grid captions' encodings) default to MiniLM; tests, and machines without the
    MiniLM package (`training.gpu_kit`), pass precomputed tensors instead.
    """
    with torch_threads(cfg.threads):
        return _train(cfg, data, encodings, empty, grid_cond)


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch's CPU thread count set to n inside, and given back after (it is process-global)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def load_init_weights(unet, path: str) -> None:
    """Warm start: weights from a diffusers UNet folder (e.g. an exported model's unet/), a
    safetensors file of a state dict, or a folder of state-dict shards (e.g. the ema-NN.safetensors
    brought back from a GPU run by `training.gpu_kit`)."""
    from safetensors.torch import load_file

    p = Path(path)
    if (p / "config.json").is_file():
        from diffusers import UNet2DConditionModel

        state = UNet2DConditionModel.from_pretrained(p, torch_dtype=torch.float32).state_dict()
    else:
        files = sorted(p.glob("*.safetensors")) if p.is_dir() else [p]
        if not files:
            raise FileNotFoundError(f"no UNet folder and no .safetensors in {path}")
        state = {k: v for f in files for k, v in load_file(f).items()}
    own = unet.state_dict()
    misfit = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    if misfit:
        raise ValueError(f"{path} does not fit this UNet: {len(misfit)} tensors differ in shape (first: {misfit[0]} "
                         f"{tuple(state[misfit[0]].shape)} here {tuple(own[misfit[0]].shape)}); it was trained with another architecture")
    missing, unexpected = unet.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    added = [k for k in missing if k.startswith(TEXT_PATH)]
    if unexpected or len(added) != len(missing):
        raise ValueError(f"{path} does not fit this UNet: {len(missing)} missing and {len(unexpected)} unexpected tensors")
    if added:  # a new caption path on a UNet trained without one: it starts silent (a zero LayerNorm
        # gain and bias), so the warm start begins as its source's function and learns the path
        with torch.no_grad():
            unet.add_embedding.norm2.weight.zero_()
            unet.add_embedding.norm2.bias.zero_()


def _train(cfg: TrainConfig, data, encodings, empty, grid_cond) -> dict:
    from diffusers.training_utils import EMAModel
    from tqdm import tqdm

    torch.manual_seed(cfg.seed)
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device)
    autocast = device.type == "cuda" and cfg.bf16
    out = Path(cfg.out)
    if (out / "STOP").exists():  # a run would stop before its first step, and still write a checkpoint and a grid
        raise SystemExit(f"{out / 'STOP'} is left from an earlier stop: remove it to train on (rm {out / 'STOP'}).")
    out.mkdir(parents=True, exist_ok=True)

    data = data if data is not None else load_corpus(cfg.corpus, "train")
    images = torch.from_numpy(data["images"])  # (N, H, W, 3) uint8, stays on CPU
    flip_ok = torch.from_numpy(np.asarray(data["flip"], bool))
    enc, row_to_enc = encodings if encodings is not None else cached_encodings(list(data["captions"]), cfg)
    if empty is None:
        empty = encode_captions([""], cfg.conditioning, cfg.max_length)  # (1, L, 384)
    enc, empty = enc.to(device), empty.to(device)
    if grid_cond is None and cfg.grid_captions:
        grid_cond = encode_captions(cfg.grid_captions, cfg.conditioning, cfg.max_length)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # the fp32 parts (norms, the loss) on tensor cores
        torch.backends.cudnn.allow_tf32 = True
        # the whole corpus and its caption index on the GPU: no copy per step
        images, flip_ok, row_to_enc = images.to(device), flip_ok.to(device), row_to_enc.to(device)
    # on CUDA every per-step draw (rows, flips, caption drop, t, noise) comes from this generator on
    # the device: a CPU tensor copied to the GPU waits for the GPU's queue to drain (a host sync a
    # draw), which left the GPU idle while Python launched the next step
    noise_gen = torch.Generator(device=device).manual_seed(cfg.seed + 1) if device.type == "cuda" else None

    unet = build_unet(cfg).to(device).train()
    if cfg.channels_last:
        unet = unet.to(memory_format=torch.channels_last)
    if cfg.init_from and not (Path(cfg.out) / "ckpt.pt").exists():
        load_init_weights(unet, cfg.init_from)
    scheduler = build_scheduler(cfg)
    acp = scheduler.alphas_cumprod.to(device)
    snr_weight = None
    if cfg.snr_gamma:  # diffusers' SNR helper, as its text-to-image example's --snr_gamma
        from diffusers.training_utils import compute_snr

        snr = compute_snr(scheduler, torch.arange(scheduler.config.num_train_timesteps)).float()
        snr_weight = (torch.clamp(snr, max=cfg.snr_gamma) / snr).to(device)
    opt = torch.optim.AdamW(unet.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.99),
                            fused=device.type == "cuda")  # one kernel for all parameters on the GPU  # fmt: skip
    # the network that runs the step (compiled or not); `unet` keeps the parameters and state dict
    net = torch.compile(unet, backend=cfg.compile_backend) if cfg.compile else unet
    ema = EMAModel(
        unet.parameters(),
        decay=cfg.ema_max_decay,
        use_ema_warmup=True,
        inv_gamma=1.0,
        power=cfg.ema_power,
        model_cls=type(unet),
        model_config=unet.config,
        foreach=device.type == "cuda",  # one fused update for all ~300 tensors instead of a few kernels each
    )
    step, images_seen, minutes_before = 0, 0, 0.0
    gen = torch.Generator().manual_seed(cfg.seed)
    ckpt = out / "ckpt.pt"
    if ckpt.exists():
        state = load_checkpoint(ckpt, device)
        check_resume(state.get("config", {}), cfg, ckpt)
        had_path = any(k.startswith(TEXT_PATH) for k in state["unet"])
        if had_path != cfg.text_time_embedding:
            raise SystemExit(f"{ckpt} was trained {'with' if had_path else 'without'} the caption in the time embedding: "
                             f"resume it with --{'' if had_path else 'no-'}text-time-embedding")  # fmt: skip
        unet.load_state_dict(state["unet"])
        opt.load_state_dict(state["opt"])
        ema.load_state_dict(state["ema"])
        step, images_seen, minutes_before = state["step"], state["images_seen"], state["minutes"]
        gen.set_state(state["gen"].cpu())  # map_location moved it
        if noise_gen is not None and "noise_gen" in state:
            noise_gen.set_state(state["noise_gen"].cpu())
        for flag, limit, done in (("--max-steps", cfg.max_steps, step), ("--max-minutes", cfg.max_minutes, minutes_before)):
            if limit is not None and done >= limit:
                raise SystemExit(f"{ckpt} has trained {step} steps in {minutes_before:.1f} min, which reaches {flag} {limit:g}: "
                                 "raise it to train on.")  # fmt: skip
        print(f"resumed from step {step} ({minutes_before:.1f} min, {images_seen} images)")
    ema.to(device)
    start_step = step
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=1))  # once the checkpoint, if any, takes these settings

    def save() -> None:
        state = {
            "unet": unet.state_dict(),
            "opt": opt.state_dict(),
            "ema": ema.state_dict(),
            "step": step,
            "images_seen": images_seen,
            "minutes": minutes(),
            "gen": gen.get_state(),
            **({"noise_gen": noise_gen.get_state()} if noise_gen is not None else {}),
            "config": asdict(cfg),
            "unet_config": dict(unet.config),
            "scheduler_config": dict(scheduler.config),
        }
        torch.save(state, out / "ckpt.tmp")
        (out / "ckpt.tmp").replace(ckpt)

    def log_grid() -> None:
        if grid_cond is None:
            return
        ema_unet = build_unet(cfg).to(device).eval()
        ema.copy_to(ema_unet.parameters())
        cond = grid_cond.repeat_interleave(2, 0)  # 2 seeds per caption -> 16 images, 2 rows of 8
        sched = dict(scheduler.config)
        ims = sample(ema_unet, sched, cond, empty, guidance_scale=3.0, steps=25, seed=0)
        ims = ims.reshape(len(cfg.grid_captions), 2, *ims.shape[1:]).transpose(1, 0, 2, 3, 4).reshape(-1, *ims.shape[1:])
        save_png(out / "samples" / f"step{step:06d}.png", grid(ims, cols=len(cfg.grid_captions), scale=3))
        # the layout figure as training goes, at the grid's scale and without guidance (guidance costs
        # layout: the shipped 32 px model's samples score less at scale 2 than at 1)
        plain = sample(ema_unet, sched, cond, empty, guidance_scale=1.0, steps=25, seed=0)
        layout = out / "samples" / LAYOUT_CSV
        new_file = not layout.exists()
        with layout.open("a") as f:
            f.write(("step,minutes,white_area_g3,white_area_g1\n" if new_file else "")
                    + f"{step},{minutes():.2f},{white_area(ims):.4f},{white_area(plain):.4f}\n")  # fmt: skip
        del ema_unet

    t_start = time.time()

    def minutes() -> float:
        return minutes_before + (time.time() - t_start) / 60

    log_path = out / "loss.csv"
    new_log = not log_path.exists()
    log_f = open(log_path, "a", newline="")  # noqa: SIM115 - kept open for the whole run
    log = csv.writer(log_f)
    if new_log:
        log.writerow(["step", "images_seen", "loss", "lr", "ema_decay", "minutes"])
    def forward_backward(net, xt, t, ctx, noise) -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            pred = net(xt, t, ctx, return_dict=False)[0]
        if snr_weight is None:
            loss = F.mse_loss(pred.float(), noise)  # the simple epsilon loss, DDPM eq. (14)
        else:  # Min-SNR-gamma: per-sample weight min(SNR, gamma) / SNR on the epsilon loss
            per_sample = F.mse_loss(pred.float(), noise, reduction="none").mean(dim=(1, 2, 3))
            loss = (per_sample * snr_weight[t]).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        return loss

    compiled_ok, compile_error = False, None  # a compiler that fails at the first step costs that step, not the call
    draw = gen if noise_gen is None else noise_gen  # every per-step draw, on `device` (the corpus is there too)
    n_t = scheduler.config.num_train_timesteps
    losses: list[float] = []
    pending: list[torch.Tensor] = []  # this log window's losses, still on the device
    last_ckpt = last_grid = time.time()
    bar = tqdm(total=cfg.max_steps, initial=step, disable=not cfg.progress, dynamic_ncols=True, mininterval=5)
    try:
        while True:
            if cfg.max_steps is not None and step >= cfg.max_steps:
                break
            if cfg.max_minutes is not None and minutes() >= cfg.max_minutes:
                break
            if cfg.run_minutes is not None and time.time() - t_start >= cfg.run_minutes * 60:
                break
            if (out / "STOP").exists():
                break
            # the draws, in this order: rows, flips, caption drop, t, noise
            idx = torch.randint(0, images.shape[0], (cfg.batch_size,), generator=draw, device=device)
            x0 = images[idx].permute(0, 3, 1, 2).float() / 127.5 - 1.0  # (B, 3, H, W) in [-1, 1]
            flip = flip_ok[idx] & (torch.rand(cfg.batch_size, generator=draw, device=device) < 0.5)
            x0 = torch.where(flip[:, None, None, None], x0.flip(-1), x0)
            ctx = enc[row_to_enc[idx]]
            drop = torch.rand(cfg.batch_size, generator=draw, device=device) < cfg.caption_dropout
            ctx = torch.where(drop[:, None, None], empty.expand_as(ctx), ctx)
            t = torch.randint(0, n_t, (cfg.batch_size,), generator=draw, device=device)
            noise = torch.randn(x0.shape, generator=draw, device=device)  # 6 MB a step at 64 px, batch 128
            a = acp[t][:, None, None, None]
            xt = a.sqrt() * x0 + (1 - a).sqrt() * noise  # DDPM eq. (4)
            for g_ in opt.param_groups:
                g_["lr"] = cfg.lr * _lr_factor(cfg, step, minutes())
            try:
                loss = forward_backward(net, xt, t, ctx, noise)
            except Exception as e:  # noqa: BLE001 - only the first compiled step: the run goes on eager
                if net is unet or compiled_ok:
                    raise
                compile_error = f"{type(e).__name__}: {e}"[:500]
                print(f"torch.compile failed at the first step, training eager instead: {compile_error}", flush=True)
                net = unet
                loss = forward_backward(net, xt, t, ctx, noise)
            compiled_ok = True
            torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
            opt.step()
            ema.step(unet.parameters())
            step += 1
            images_seen += cfg.batch_size
            pending.append(loss.detach())  # no .item() a step: a host sync a step leaves the GPU idle between steps
            bar.update(1)
            if step % cfg.log_every == 0:
                window = torch.stack(pending).tolist()
                losses.extend(window)
                pending.clear()
                mean = sum(window) / len(window)
                log.writerow(
                    [
                        step,
                        images_seen,
                        f"{mean:.5f}",
                        f"{opt.param_groups[0]['lr']:.3e}",
                        f"{ema.cur_decay_value or 0:.5f}",
                        f"{minutes():.3f}",
                    ]
                )
                log_f.flush()
                bar.set_postfix(loss=f"{mean:.4f}", min=f"{minutes():.1f}")
            if time.time() - last_ckpt > cfg.checkpoint_minutes * 60:
                save()
                last_ckpt = time.time()
            if time.time() - last_grid > cfg.sample_minutes * 60:
                log_grid()
                last_grid = time.time()
    finally:
        bar.close()
        log_f.close()
        losses.extend(torch.stack(pending).tolist() if pending else [])
        if step > 0:
            save()
    if cfg.grid_captions and step > 0:
        log_grid()
    return {"losses": losses, "steps": step, "run_steps": step - start_step, "images_seen": images_seen, "minutes": minutes(), "ema": ema, "unet": unet,
            "compiled": net is not unet, "compile_error": compile_error}  # fmt: skip


# What a checkpoint's network and data are, with the flag that sets each: resumed with another value, a run trained
# another model on its weights (a pooled model on token states, saying nothing) or failed in load_state_dict.
MODEL_FLAGS = {"resolution": "--resolution", "block_out_channels": "--channels", "attention": "--attention",
               "layers_per_block": "--layers-per-block", "attention_head_dim": "--attention-head-dim",
               "norm_num_groups": "--norm-groups", "conditioning": "--conditioning", "text_time_embedding": "--text-time-embedding",
               "beta_schedule": "--beta-schedule", "schedule_shift": "--schedule-shift"}  # fmt: skip


def _flag(name: str, value) -> str:
    """A setting as the command line gives it: --channels 32,64 --attention 0,1 --no-text-time-embedding."""
    if isinstance(value, bool):
        return MODEL_FLAGS[name] if value else MODEL_FLAGS[name].replace("--", "--no-", 1)
    if isinstance(value, (list, tuple)):
        value = ",".join(str(int(v)) if isinstance(v, bool) else str(v) for v in value)
    return f"{MODEL_FLAGS[name]} {value}"


def check_resume(trained: dict, cfg: TrainConfig, ckpt: Path) -> None:
    """Refuse to resume a checkpoint with settings that define another model; the message gives its own."""
    now = asdict(cfg)
    differ = [k for k in MODEL_FLAGS if k in trained and json.dumps(trained[k]) != json.dumps(now[k])]
    if differ:
        raise SystemExit(f"{ckpt} was trained with {' '.join(_flag(k, trained[k]) for k in differ)}, not "
                         f"{' '.join(_flag(k, now[k]) for k in differ)}: resume it with its own, or give a new --out.")  # fmt: skip


def load_checkpoint(ckpt: Path, device: torch.device) -> dict:
    """A training checkpoint, or an exit in one sentence when it cannot be read (cut short, not a checkpoint)."""
    import pickle

    try:
        return torch.load(ckpt, map_location=device, weights_only=False)
    except (RuntimeError, EOFError, pickle.UnpicklingError, ValueError) as e:
        why = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise SystemExit(f"{ckpt} cannot be read ({why}): it is damaged; delete it to start over, or restore a copy.") from None


def _tuple(kind):
    return lambda s: tuple(kind(v) for v in s.split(","))


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    ap = argparse.ArgumentParser(description="Train the emoji pixel diffusion model.")
    d = TrainConfig()
    ap.add_argument("--corpus", default=d.corpus)
    ap.add_argument("--out", default=d.out)
    ap.add_argument("--resolution", type=int, default=d.resolution)
    ap.add_argument("--channels", type=_tuple(int), default=d.block_out_channels, help="block_out_channels, e.g. 32,64,96,128")
    ap.add_argument("--attention", type=_tuple(lambda v: v == "1"), default=d.attention, help="per level, e.g. 0,0,1,1")
    ap.add_argument("--layers-per-block", type=int, default=d.layers_per_block)
    ap.add_argument("--attention-head-dim", type=int, default=d.attention_head_dim)
    ap.add_argument("--norm-groups", type=int, default=d.norm_num_groups)
    ap.add_argument("--conditioning", choices=["pooled", "tokens"], default=d.conditioning)
    ap.add_argument("--text-time-embedding", action=argparse.BooleanOptionalAction, default=d.text_time_embedding,
                    help="also add the caption to the time embedding (diffusers addition_embed_type 'text'), so it reaches "
                         "every ResNet block (default on; --no-text-time-embedding: the shipped 32 px model's UNet)")  # fmt: skip
    ap.add_argument("--beta-schedule", default=d.beta_schedule)
    ap.add_argument("--schedule-shift", type=float, default=d.schedule_shift,
                    help="log-SNR shift of the schedule, as a resolution ratio (2: a 64 px model on the 32 px schedule's SNR); 1: none")
    ap.add_argument("--batch-size", type=int, default=d.batch_size)
    ap.add_argument("--lr", type=float, default=d.lr)
    ap.add_argument("--warmup-steps", type=int, default=d.warmup_steps)
    ap.add_argument("--lr-decay", choices=["constant", "cosine"], default=d.lr_decay)
    ap.add_argument("--min-lr-ratio", type=float, default=d.min_lr_ratio, help="where the cosine ends, as a share of --lr")
    ap.add_argument("--snr-gamma", type=float, default=d.snr_gamma, help="Min-SNR-gamma loss weighting; 0: the plain epsilon loss")
    ap.add_argument("--ema-max-decay", type=float, default=d.ema_max_decay)
    ap.add_argument("--ema-power", type=float, default=d.ema_power)
    ap.add_argument("--max-steps", type=int, default=None)
    ap.add_argument("--max-minutes", type=float, default=None, help="in all, over resumed runs (the cosine decay spans it)")
    ap.add_argument("--run-minutes", type=float, default=None, help="this invocation only (a checkpoint is written at the end)")
    ap.add_argument("--init-from", default=None, help="warm start from a UNet folder or a safetensors state dict")
    ap.add_argument("--checkpoint-minutes", type=float, default=d.checkpoint_minutes)
    ap.add_argument("--sample-minutes", type=float, default=d.sample_minutes)
    ap.add_argument("--device", default=d.device)
    ap.add_argument("--no-bf16", action="store_true", help="train in fp32 on CUDA too")
    ap.add_argument("--channels-last", action="store_true", help="the UNet in channels_last (NHWC) memory format")
    ap.add_argument("--compile", action="store_true", help="torch.compile the UNet (the first steps compile)")
    ap.add_argument("--threads", type=int, default=d.threads)
    ap.add_argument("--seed", type=int, default=d.seed)
    a = show_defaults(ap).parse_args(argv)
    cfg = TrainConfig(
        corpus=a.corpus,
        out=a.out,
        resolution=a.resolution,
        block_out_channels=a.channels,
        attention=a.attention,
        layers_per_block=a.layers_per_block,
        attention_head_dim=a.attention_head_dim,
        norm_num_groups=a.norm_groups,
        conditioning=a.conditioning,
        text_time_embedding=a.text_time_embedding,
        beta_schedule=a.beta_schedule,
        schedule_shift=a.schedule_shift,
        batch_size=a.batch_size,
        lr=a.lr,
        warmup_steps=a.warmup_steps,
        lr_decay=a.lr_decay,
        min_lr_ratio=a.min_lr_ratio,
        snr_gamma=a.snr_gamma,
        ema_max_decay=a.ema_max_decay,
        ema_power=a.ema_power,
        max_steps=a.max_steps,
        max_minutes=a.max_minutes,
        run_minutes=a.run_minutes,
        init_from=a.init_from,
        checkpoint_minutes=a.checkpoint_minutes,
        sample_minutes=a.sample_minutes,
        device=a.device,
        bf16=not a.no_bf16,
        channels_last=a.channels_last,
        compile=a.compile,
        threads=a.threads,
        seed=a.seed,
    )
    if len(cfg.attention) != len(cfg.block_out_channels):
        raise SystemExit("--attention needs one 0/1 per entry of --channels")
    if cfg.schedule_shift <= 0:
        raise SystemExit(f"--schedule-shift {cfg.schedule_shift} is out of range; allowed: > 0 (1: no shift)")
    if not 0.0 <= cfg.min_lr_ratio <= 1.0:
        raise SystemExit(f"--min-lr-ratio {cfg.min_lr_ratio} is out of range; allowed: [0, 1] (a share of --lr)")
    if cfg.device != "auto":
        from editing.models import check_device

        try:
            check_device(cfg.device)
        except ValueError as e:
            raise SystemExit(f"--device: {e}") from None
    return cfg


def main(argv: list[str] | None = None) -> None:
    cfg = parse_args(argv)
    try:
        r = train(cfg)
    except KeyboardInterrupt:  # the run's own finally has written the checkpoint
        print(f"interrupted: {Path(cfg.out) / 'ckpt.pt'} holds the last step; run the same command to resume.", file=sys.stderr)
        raise SystemExit(130) from None
    print(f"done: {r['run_steps']} steps this run, {r['steps']} in all, {r['images_seen']} images, {r['minutes']:.1f} min")


if __name__ == "__main__":
    main()
