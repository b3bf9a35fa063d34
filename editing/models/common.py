"""What every diffusers-backed bundle shares: the network slot, argument plumbing and eps conversion.

`eps(x_t, t, cond)` of every family goes through `DiffusersBundle._args`, so the argument rules are
the same everywhere:

- x_t: (B, C, h, w), any float dtype; cast to the network's dtype.
- t: a scalar or a (B,) tensor/float, kept in float (never rounded to an integer timestep).
- cond: (1, L, D) is broadcast to B, (B, L, D) is used as is; None means the empty prompt for
  conditional models (the unconditional embedding of classifier-free guidance). Cast to the
  network's dtype, except a cond that requires grad under autocast (it keeps its float32).

The output is always float32. Nothing here forces `torch.no_grad()`: callers wrap sampling in it,
and Imagic's fine-tuning deliberately calls `eps` with gradients on.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import torch

from editing.interface import PromptReading
from editing.models.base import ModelBundle
from editing.schedule import VPSchedule

PredictionType = Literal["epsilon", "v_prediction", "sample"]


class DiffusersBundle(ModelBundle):
    """A ModelBundle around one diffusers denoising network `unet` (eval mode, frozen)."""

    unet: torch.nn.Module  # the denoising network (eval mode, requires_grad False)
    clip_range: tuple[float, float] | None = (-1.0, 1.0)  # pixels; VE and latent bundles override
    _uncond: torch.Tensor | None = None  # conditional bundles: the cached empty-prompt embedding

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.unet.parameters()).dtype

    def replace(self, *, unet: torch.nn.Module) -> DiffusersBundle:
        """A shallow copy of this bundle that runs `unet` instead (Imagic fine-tunes a copy)."""
        new = copy.copy(self)
        new.unet = unet
        return new

    # -- plumbing shared by the families' eps ------------------------------------------------

    def _args(self, x_t: torch.Tensor, t, cond: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(x_t in the network dtype, t as float32 (B,), cond as (B, L, D) in the network dtype or None).

        A conditional bundle's cond None becomes the empty prompt; unconditional bundles get None."""
        if x_t.ndim != 4:
            raise ValueError(f"x_t must be (B, C, h, w), got shape {tuple(x_t.shape)}")
        b = x_t.shape[0]
        device, dtype = self.device, self.dtype
        t = torch.as_tensor(t, device=device).to(torch.float32)
        if t.ndim == 0:
            t = t.expand(b)
        elif t.shape != (b,):
            raise ValueError(f"t must be a scalar or have shape ({b},), got {tuple(t.shape)}")
        if cond is None and self.conditional:
            cond = self._empty_prompt()
        if cond is not None:
            if cond.ndim != 3 or cond.shape[0] not in (1, b):
                raise ValueError(f"cond must be (1, L, D) or ({b}, L, D), got {tuple(cond.shape)}")
            # A cond that is being optimised (Imagic's embedding) keeps its float32 under autocast,
            # which casts it where it is used: cast to float16 here, its gradient would come back
            # through float16 with no loss scaling, mostly subnormal or flushed to zero.
            keep = cond.requires_grad and torch.is_autocast_enabled(device.type)
            cond = cond.to(device=device, dtype=None if keep else dtype).expand(b, -1, -1)
        return x_t.to(device=device, dtype=dtype), t, cond

    def _empty_prompt(self) -> torch.Tensor:
        if self._uncond is None:
            self._uncond = self.encode_prompt([""])
        return self._uncond


def to_eps(
    out: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, schedule: VPSchedule, prediction_type: PredictionType
) -> torch.Tensor:
    """Convert a VP network output to eps (float32), with abar at the continuous time t.

    x_t = sqrt(abar) x0 + sqrt(1 - abar) eps, and v = sqrt(abar) eps - sqrt(1 - abar) x0
    (Salimans & Ho 2022), so eps = sqrt(abar) v + sqrt(1 - abar) x_t and, for x0-prediction,
    eps = (x_t - sqrt(abar) x0) / sqrt(1 - abar).
    """
    out = out.float()
    if prediction_type == "epsilon":
        return out
    # abar on a CUDA t's device: a round trip through the host would make it wait for the GPU at every
    # step (MPS has no float64: its t goes through the host)
    t = t.detach() if t.device.type == "cuda" else t.detach().cpu()
    abar = schedule.alpha_bar_unchecked(t).to(device=out.device, dtype=torch.float32).view(-1, 1, 1, 1)
    x_t = x_t.to(device=out.device, dtype=torch.float32)
    if prediction_type == "v_prediction":
        return abar.sqrt() * out + (1 - abar).sqrt() * x_t
    if prediction_type == "sample":
        return (x_t - abar.sqrt() * out) / (1 - abar).sqrt()
    raise ValueError(f"unknown prediction_type {prediction_type!r}; allowed: 'epsilon', 'v_prediction', 'sample'")


def component_dir(folder: Path, name: str) -> Path:
    """Where a pipeline component lives: folder/name, or the folder itself for flat repos.

    Early diffusers repos (google/ddpm-ema-*-256, google/ncsnpp-*) keep the UNet's config.json and
    weights and scheduler_config.json at the root; diffusers' own loader falls back the same way.
    """
    sub = Path(folder) / name
    return sub if sub.is_dir() else Path(folder)


def prompt_reading(tokenizer, prompt: str, max_length: int) -> PromptReading:
    """How a text encoder reads `prompt` when encode_prompt truncates it to `max_length` tokens (the
    start and end tokens count): the words it leaves out ("" when all fit; a word cut in its middle
    counts as left out) and the words it does not know (its unknown token: emoji, other scripts)."""
    keep = max(int(max_length) - 2, 0)

    def ids(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]

    unk = tokenizer.unk_token_id
    unknown = tuple(w for w in dict.fromkeys(prompt.split()) if unk is not None and unk in ids(w))
    if len(ids(prompt)) <= keep:
        return PromptReading(keep, "", unknown)
    words = prompt.split()
    lo, hi = 0, len(words)  # the most words that fit: words[:lo] fit, words[:hi] do not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if len(ids(" ".join(words[:mid]))) <= keep else (lo, mid)
    return PromptReading(keep, " ".join(words[lo:]), unknown)


def check_prompts(prompts) -> list[str]:
    """Prompts as a list of str; anything else (None, a number) is a ValueError in one sentence, not
    the tokenizer's lines about batches of strings."""
    prompts = list(prompts)
    for p in prompts:
        if not isinstance(p, str):
            raise ValueError(f'a prompt must be text (a str; "" for none), got {p!r}')
    return prompts


def read_json(path: Path) -> dict:
    """A JSON file of a model folder; a damaged one is a ValueError that names it."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"'{path}' is damaged (not valid JSON: {e}): download or export the model again.") from None


def unet_side(folder: Path, config: dict, channels: int | None = 3) -> int:
    """The side of the square the UNet config `config` (its config.json, read before any weight loads) works
    at; a ValueError in one sentence for what the engine cannot run: no `sample_size` or a non-square one
    (diffusers allows [h, w] and null), or, for a pixel model (`channels` 3), a UNet that does not take RGB
    pictures (a greyscale MNIST-style model failed mid-run in a convolution)."""
    size = config.get("sample_size")
    if isinstance(size, (list, tuple)) and len(size) == 2 and size[0] == size[1]:
        size = size[0]
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        shown = "none" if size is None else repr(size)
        raise ValueError(f"'{folder}': the UNet's config.json gives sample_size {shown}; Stroke Studio runs models that "
                         "work on a square picture of one size (sample_size one whole number, or [n, n]).")  # fmt: skip
    if channels is not None and config.get("in_channels", 3) != channels:
        raise ValueError(f"'{folder}': the UNet takes {config.get('in_channels')}-channel pictures; Stroke Studio runs pixel "
                         f"models of RGB pictures ({channels} channels).")  # fmt: skip
    return size


def frozen(module: torch.nn.Module, device) -> torch.nn.Module:
    """A loaded module (already in its dtype, set at from_pretrained) on device, eval mode, gradients off."""
    return module.to(device=device).eval().requires_grad_(False)


@contextmanager
def quiet_loading() -> Iterator[None]:
    """Silence transformers' per-tensor "Loading weights" bar while loading from a local folder."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()
