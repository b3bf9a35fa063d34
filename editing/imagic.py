"""Imagic (Kawar et al., CVPR 2023, arXiv 2210.09276): text-based editing of one real image.

Algorithm (paper Sec. 3 and Fig. 3), with x the input in model space and e_tgt the target text's
conditioning (token states for the emoji model, CLIP hidden states for Stable Diffusion):

    diffusion loss  L(x, e, theta) = E_{t, eps} || eps - eps_theta(x_t, t, e) ||^2,
                    x_t = sqrt(abar_t) x + sqrt(1 - abar_t) eps,  t ~ U{0..T-1}      (paper Eq. 2)
    1. e_opt = argmin_e L(x, e, theta), Adam from e = e_tgt, theta frozen        (Eq. 2, stage A)
    2. theta* = argmin_theta L(x, e_opt, theta), e_opt fixed                     (Eq. 3, stage B)
       here on a COPY of the UNet ("full", as in the paper) or on a LoRA adapter of its attention
       projections ("lora", peft); the loaded model is never modified
    3. e_bar = eta e_tgt + (1 - eta) e_opt                                        (Eq. 4, stage C)
       sample from noise with theta* and classifier-free guidance (DDIM, or DDPM)

Stages 1-2 produce an `ImagicState` (a value: embeddings plus the adapter weights or the tuned
weights), cached by content, so moving the eta slider or changing the sampling seed re-renders
without optimising again. All randomness comes from CPU generators seeded by the config.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from editing import images as im
from editing.cache import LRUCache, content_key
from editing.fastpath import plain_unet
from editing.interface import Frame, ImagicConfig, check_config
from editing.samplers import cfg_denoiser, clip_range, predict_x0, randn, sample_vp

__all__ = ["CACHE", "ImagicConfig", "ImagicState", "imagic", "optimize_imagic", "render_imagic", "state_key"]

# States of the last few (image, text, model, optimisation settings): enough for the UI's undo of
# one edit. A Stable Diffusion "full" state holds a whole UNet (1.7 GB in fp16, on the CPU).
CACHE = LRUCache(maxsize=2)
# The attention projections of diffusers' Attention blocks (self- and cross-attention).
LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")
# Config fields that change the optimised state: its cache key. The rest (eta, guidance_scale,
# steps, sampler, seed, previews, the preset label) only re-render.
OPTIMIZATION_FIELDS = ("embedding_steps", "embedding_lr", "finetune_steps", "finetune_lr", "finetune_mode", "lora_rank",
                       "batch_size", "optimization_seed", "gradient_checkpointing", "mixed_precision")
# Reconstruction previews during optimisation: predict x0 from the input noised to this fraction
# of the schedule, with one fixed noise (so successive previews differ only by the optimisation).
PREVIEW_TIME_FRACTION = 0.5


@dataclass(frozen=True, eq=False)
class ImagicState:
    """The result of stages 1-2. Tensors live on the CPU; `render_imagic` moves what it needs."""

    key: str  # content key: image, text, model id + weights hash, dtype, every optimisation field
    target_prompt: str
    model_id: str
    weights_hash: str
    image_shape: tuple[int, int]  # (H, W) of the input: results are returned at this size
    e_tgt: torch.Tensor  # (1, L, D) float32: the target text's conditioning
    e_opt: torch.Tensor  # (1, L, D) float32: the optimised conditioning (stage 1)
    finetune_mode: str  # "lora" or "full"
    lora_rank: int
    # "lora": the adapter's state dict (peft names, float32). "full": the tuned UNet's whole state
    # dict in the model's dtype (a delta would be as large, and adding it back costs a rounding).
    weights: dict[str, torch.Tensor]
    optimizer_steps: int  # Adam steps taken to make this state (stage 1 + stage 2)
    losses: tuple[float, ...]  # the diffusion loss at each of those steps


def _check_model(model) -> None:
    if not model.conditional:
        raise ValueError(f"Imagic needs a text-conditioned model; {model.model_id} is unconditional")
    if model.kind != "vp":
        raise ValueError(f"Imagic needs a VP (DDPM-type) model; {model.model_id} is {model.kind}")


def state_key(model, image: np.ndarray, target_prompt: str, config: ImagicConfig) -> str:
    """The content key of the state `optimize_imagic` would compute (what the cache is keyed by)."""
    opt = {name: getattr(config, name) for name in OPTIMIZATION_FIELDS}
    return content_key("imagic", image, target_prompt, model.model_id, model.weights_hash, str(model.dtype), opt)


# ----------------------------------------------------------------------------- stages 1-2
def _mixed(model, config: ImagicConfig) -> bool:
    """bf16 autocast for stages 1-2: on CUDA, when asked for and the GPU has bf16."""
    return bool(config.mixed_precision and model.device.type == "cuda" and torch.cuda.is_bf16_supported())


def _autocast(model, config: ImagicConfig):
    """The context of one step's forward: bf16 autocast where `_mixed`; otherwise none, and the
    stages run on a float32 copy (`_optimize`): float16 gradients would need loss scaling, which
    this does not do."""
    if _mixed(model, config):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _lora_config(rank: int):
    from peft import LoraConfig

    # alpha = r: the adapter's scale is 1 whatever the rank. B starts at zero, so the adapted
    # network starts exactly at the loaded one.
    return LoraConfig(r=rank, lora_alpha=rank, init_lora_weights=True, target_modules=list(LORA_TARGETS))


def _add_lora(unet: torch.nn.Module, rank: int, seed: int) -> None:
    """Inject LoRA adapters into `unet` (a copy), their random A matrices drawn from `seed`."""
    devices = [unet.device] if unet.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        unet.add_adapter(_lora_config(rank))
    for name, p in unet.named_parameters():
        if "lora_" in name:
            p.data = p.data.float()  # fp32 adapter weights on a half-precision base


def _eager_copy(model) -> torch.nn.Module:
    """A copy of the loaded UNet as Imagic trains and renders it: eager (under any compiled or
    graph-replay wrapper of the fast path), and with the attention's separate q, k and v projections
    in use: after the fast path's `fuse_qkv` the forward runs fused copies of them, which LoRA's
    targets (LORA_TARGETS) and a full fine-tuning's to_q/k/v would miss."""
    unet = copy.deepcopy(plain_unet(model.unet))
    if getattr(unet, "original_attn_processors", None) is not None:  # set by diffusers' fuse_qkv_projections()
        unet.unfuse_qkv_projections()
    return unet


class _Loss:
    """The diffusion loss of Eq. 2 at `batch_size` random (t, eps) pairs per call, seeded.

    A stage's draws are made up front (`draw`), on the CPU generator in the same order as one step
    at a time (so a seed gives the same optimisation on every device), and reach the device in one
    copy: a step then makes no host-to-device copy, which on a GPU would wait for the queue."""

    def __init__(self, model, x0: torch.Tensor, config: ImagicConfig):
        self.model, self.x0, self.batch = model, x0, config.batch_size
        self.abar = model.schedule.alphas_cumprod.to(torch.float32)  # (T,) on the CPU
        self.gen = torch.Generator(device="cpu").manual_seed(config.optimization_seed)
        self.draws: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def draw(self, steps: int) -> None:
        """Draw the next `steps` steps' (t, eps) and move them, with sqrt(abar_t), to the device."""
        t = torch.empty((steps, self.batch), dtype=torch.int64)
        eps = torch.empty((steps, self.batch, *self.x0.shape[1:]), dtype=torch.float32)
        for i in range(steps):  # the interleaved order of one draw per step
            t[i] = torch.randint(0, self.abar.shape[0], (self.batch,), generator=self.gen)
            eps[i] = torch.randn(eps.shape[1:], generator=self.gen, dtype=torch.float32)
        a = self.abar[t]  # (steps, B)
        t = t.float()  # before pinning: a float copy made afterwards would be pageable again
        dev = self.x0.device
        if dev.type == "cuda":
            t, eps, a = t.pin_memory(), eps.pin_memory(), a.pin_memory()
        self.draws = tuple(v.to(dev, non_blocking=True) for v in (t, eps, a))

    def __call__(self, bundle, cond: torch.Tensor, i: int) -> torch.Tensor:
        """The loss at step i (0-based) of the last `draw`."""
        t, eps, a = (v[i] for v in self.draws)
        a = a.view(-1, 1, 1, 1)
        x_t = a.sqrt() * self.x0 + (1 - a).sqrt() * eps
        pred = bundle.eps(x_t, t, cond)
        return F.mse_loss(pred.float(), eps)


def _preview(bundle, x0: torch.Tensor, cond: torch.Tensor, noise: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(x_t, predicted x0) previews: the input noised to the middle of the schedule, denoised in one step."""
    t = PREVIEW_TIME_FRACTION * bundle.schedule.num_train_timesteps - 1.0
    a = float(bundle.schedule.alpha_bar(t))
    with torch.no_grad():
        x_t = math.sqrt(a) * x0 + math.sqrt(1 - a) * noise
        eps = bundle.eps(x_t, torch.full((1,), t, device=x0.device), cond.detach()).float()
        x0_pred = predict_x0(x_t, eps, a)
    return bundle.preview(x_t)[0], bundle.preview(x0_pred)[0]


def _adam(stage: str, bundle, loss_fn: _Loss, params: list[torch.Tensor], cond: torch.Tensor, steps: int, lr: float,
          config: ImagicConfig, x0: torch.Tensor, losses: list[float]) -> Iterator[Frame]:
    """`steps` Adam steps on `params` (Kawar et al. use Adam in both stages), a Frame after each.

    The optimiser is local: its state (2x the parameters) is gone when this returns.
    """
    optimizer = torch.optim.Adam(params, lr=lr)
    preview_noise = randn(x0.shape, torch.Generator(device="cpu").manual_seed(config.optimization_seed + 1), x0.device)
    loss_fn.draw(steps)
    pending: list[torch.Tensor] = []  # losses still on the device: read back at the previews, not every step
    for i in range(1, steps + 1):
        optimizer.zero_grad(set_to_none=True)
        # Autocast around the forward only, a context per step: autocast keeps its low-precision copy
        # of each trained float32 weight until its context exits, so a context spanning the steps
        # would feed every forward the first step's weights (and PyTorch runs backward outside it).
        with _autocast(bundle, config):
            loss = loss_fn(bundle, cond, i - 1)
        loss.backward()
        optimizer.step()
        pending.append(loss.detach())
        xt = x0_pred = value = None
        if i % config.optimize_preview_every == 0 or i == steps:
            losses.extend(torch.stack(pending).tolist())
            pending, value = [], losses[-1]
            with _autocast(bundle, config):
                xt, x0_pred = _preview(bundle, x0, cond, preview_noise)
        yield Frame(i, steps, stage, xt=xt, x0=x0_pred, loss=value)
    del optimizer


def _optimize(model, image: np.ndarray, target_prompt: str, config: ImagicConfig, key: str) -> Iterator[Frame]:
    """Stages 1 and 2; yields their Frames and *returns* the ImagicState (use `yield from`)."""
    x0 = model.encode_image(im.to_model_size(image, model.resolution)).float()  # (1, C, h, w)
    e_tgt = model.encode_prompt([target_prompt]).float()  # (1, L, D)
    loss_fn, losses = _Loss(model, x0, config), []

    # One copy serves both stages (the loaded model is never touched, not even a flag on it). Full
    # fine-tuning keeps fp32 master weights: a 5e-7 step vanishes in fp16 rounding.
    tuned = _eager_copy(model).requires_grad_(False).eval()
    if (config.finetune_mode == "full" and config.finetune_steps > 0) or (model.dtype == torch.float16 and not _mixed(model, config)):
        tuned = tuned.float()  # a float16 model with no autocast (a GPU without bf16, a CPU) trains in float32
    if config.gradient_checkpointing:
        tuned.enable_gradient_checkpointing()
    bundle = model.replace(unet=tuned)

    # Stage 1 (Eq. 2): optimise the conditioning, network frozen.
    e_opt = e_tgt.clone().requires_grad_(True)
    yield from _adam("optimize", bundle, loss_fn, [e_opt], e_opt, config.embedding_steps, config.embedding_lr,
                     config, x0, losses)
    e_opt = e_opt.detach()

    # Stage 2 (Eq. 3): fine-tune the copy (or an adapter on it), conditioning fixed.
    if config.finetune_mode == "lora":
        _add_lora(tuned, config.lora_rank, config.optimization_seed)
        params = [p for name, p in tuned.named_parameters() if "lora_" in name]
    else:
        params = list(tuned.parameters())
    for p in params:
        p.requires_grad_(True)
    yield from _adam("finetune", bundle, loss_fn, params, e_opt, config.finetune_steps, config.finetune_lr,
                     config, x0, losses)
    del params

    if config.finetune_mode == "lora":
        from peft.utils import get_peft_model_state_dict

        weights = {k: v.detach().float().cpu().clone() for k, v in get_peft_model_state_dict(tuned).items()}
    else:
        weights = {k: v.detach().to(device="cpu", dtype=model.dtype).clone() for k, v in tuned.state_dict().items()}
    del tuned, bundle
    return ImagicState(
        key=key, target_prompt=target_prompt, model_id=model.model_id, weights_hash=model.weights_hash,
        image_shape=tuple(image.shape[:2]), e_tgt=e_tgt.cpu(), e_opt=e_opt.cpu(), finetune_mode=config.finetune_mode,
        lora_rank=config.lora_rank, weights=weights, optimizer_steps=config.embedding_steps + config.finetune_steps,
        losses=tuple(losses),
    )


def optimize_imagic(model, image: np.ndarray, target_prompt: str, config: ImagicConfig,
                    cache: LRUCache | None = CACHE) -> Iterator[Frame]:
    """Stages 1-2: Frames of stage "optimize" then "finetune" (loss every step, previews every
    `config.optimize_preview_every`), then Frame(stage="done", result=ImagicState).

    A cached state for the same content is returned at once (info["cache_hit"], and
    info["optimizer_steps"] = 0). Bad input raises ValueError here, at the call.
    """
    _check_model(model)
    if not target_prompt.strip():  # the empty text is the unconditional embedding: nothing to edit towards
        raise ValueError("Imagic needs a target text: what the edited image should show.")
    image = im.load_image(image)
    key = state_key(model, image, target_prompt, config)
    return _optimize_frames(model, image, target_prompt, config, key, cache)


def _optimize_frames(model, image, target_prompt, config, key, cache) -> Iterator[Frame]:
    state = cache.get(key) if cache is not None else None
    hit = state is not None
    if state is None:
        state = yield from _optimize(model, image, target_prompt, config, key)
        if cache is not None:
            cache.put(key, state)
    n = config.embedding_steps + config.finetune_steps
    yield Frame(n, n, "done", result=state,
                info={"state_key": key, "cache_hit": hit, "optimizer_steps": 0 if hit else state.optimizer_steps})


# ----------------------------------------------------------------------------- stage 3
def tuned_unet(model, state: ImagicState) -> torch.nn.Module:
    """A fresh copy of the loaded UNet carrying the state's fine-tuning (LoRA merged in)."""
    unet = _eager_copy(model)
    if state.finetune_mode == "lora":
        from peft import set_peft_model_state_dict

        _add_lora(unet, state.lora_rank, seed=0)  # the random init is overwritten just below
        set_peft_model_state_dict(unet, {k: v.to(unet.device) for k, v in state.weights.items()})
        unet.fuse_lora()  # W + B A, so sampling runs the plain layers
    else:
        unet.load_state_dict(state.weights)
    return unet.requires_grad_(False).eval()


def render_imagic(model, state: ImagicState, config: ImagicConfig) -> Iterator[Frame]:
    """Stage 3 from a state: e_bar = eta e_tgt + (1 - eta) e_opt (Eq. 4), sampled with the tuned
    model and classifier-free guidance. Preview Frames (stage "denoise") at every multiple of
    `config.preview_every`, then Frame(stage="done", result=uint8 image at the input's size)."""
    _check_model(model)
    if (state.model_id, state.weights_hash) != (model.model_id, model.weights_hash):
        raise ValueError(f"this Imagic state was made with model {state.model_id} ({state.weights_hash}), "
                         f"not {model.model_id} ({model.weights_hash})")
    return _render_frames(model, state, config)


@torch.no_grad()
def _render_frames(model, state: ImagicState, config: ImagicConfig) -> Iterator[Frame]:
    device = model.device
    tuned = model.replace(unet=tuned_unet(model, state))
    e_bar = config.eta * state.e_tgt + (1.0 - config.eta) * state.e_opt  # (1, L, D), Eq. 4
    uncond = model.encode_prompt([""])
    eps_fn = cfg_denoiser(tuned, e_bar.to(device), uncond, config.guidance_scale)
    gen = torch.Generator(device="cpu").manual_seed(config.seed)
    x_T = randn((1, *model.latent_shape), gen, device)  # N(0, I)
    times = model.schedule.times(config.steps)
    total, k = len(times) - 1, config.preview_every
    eta = 1.0 if config.sampler == "ddpm" else 0.0  # the sampler's eta, not Imagic's
    for i, x, x0_pred in sample_vp(eps_fn, x_T, model.schedule, times, eta, gen, clip=clip_range(model)):
        if (i + 1) % k == 0 and i + 1 < total:
            yield Frame(i + 1, total, "denoise", xt=model.preview(x)[0], x0=model.preview(x0_pred)[0])
    out = im.from_model_size(model.decode(x)[0], state.image_shape)
    yield Frame(total, total, "done", image=out, result=out, info={"state_key": state.key, "eta": config.eta, "seed": config.seed})


# ----------------------------------------------------------------------------- all stages
def imagic(model, image: np.ndarray, target_prompt: str, config: ImagicConfig, cache: LRUCache | None = CACHE) -> Iterator[Frame]:
    """Imagic end to end: the optimisation Frames (none on a cache hit), the denoising Frames, then
    Frame(stage="done", result=uint8 image at the input's size, info={"state_key", "cache_hit",
    "optimizer_steps"}). `cache=None` neither reads nor fills a cache."""
    check_config(config, ImagicConfig, "imagic")
    frames = optimize_imagic(model, image, target_prompt, config, cache)
    return _imagic_frames(model, frames, config)


def _imagic_frames(model, frames: Iterator[Frame], config: ImagicConfig) -> Iterator[Frame]:
    info: dict = {}
    state = None
    for frame in frames:
        if frame.done:
            state, info = frame.result, frame.info
        else:
            yield frame
    for frame in render_imagic(model, state, config):
        yield dataclasses.replace(frame, info={**frame.info, **info}) if frame.done else frame


# ----------------------------------------------------------------------------- command line
def _resolve_cli(model, configs: dict[str, Any], given: Collection[str]) -> dict[str, Any]:
    """Fields the user did not give take the chosen preset's values for this model family."""
    _check_model(model)  # before the preset lookup, whose message for an unconditional family is less clear
    config = configs["imagic"].for_family(model.family, given)
    if "lora_rank" in given and config.finetune_mode != "lora":  # it would be ignored without a word
        why = "--finetune-mode full" if "finetune_mode" in given else f"the {config.preset} preset fine-tunes every weight"
        raise ValueError(f"--lora-rank is read only with --finetune-mode lora, and {why}: leave --lora-rank out, "
                         "or add --finetune-mode lora")  # fmt: skip
    return {**configs, "imagic": config}


def _run_cli(model, images, prompts, configs) -> Iterator[Frame]:
    _check_model(model)
    return imagic(model, images["image"], prompts.get("target", ""), configs["imagic"])


def _register() -> None:
    from editing.cli import MethodSpec, register_method

    register_method(MethodSpec(
        "imagic", "Imagic: optimise the text embedding to the image, fine-tune a copy, interpolate with --eta",
        {"imagic": ImagicConfig}, ("image",), (), (), {"target": "text describing the edited image"}, _run_cli,
        resolve=_resolve_cli,
    ))


_register()
