"""Exact-denoiser model bundles for a Gaussian data distribution x0 ~ N(mu, s^2 I).

For such data the optimal noise predictor is known in closed form, so samplers, SDEdit and
inversion can be checked against exact answers with no network at all.

VP, x_t = a x0 + b eps with a = sqrt(abar_t), b = sqrt(1 - abar_t):
    x_t ~ N(a mu, (a^2 s^2 + b^2) I) and Cov(eps, x_t) = b I, so
    E[eps | x_t] = b (x_t - a mu) / (a^2 s^2 + b^2)
                 = sqrt(1 - abar) (x_t - sqrt(abar) mu) / (abar s^2 + 1 - abar).
VE, x = x0 + sigma z:
    score(x) = -(x - mu) / (s^2 + sigma^2),  eps = -sigma score = sigma (x - mu) / (s^2 + sigma^2).

Conditional variant: the mean is mu + offset(prompt), a per-channel offset derived from a hash of
the prompt ("" -> 0), so prompts and classifier-free guidance change the result for real.
Images are 3 x 8 x 8 pixels; encode/decode map uint8 <-> [-1, 1] and are exact on the uint8 grid.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import torch

from editing.models.base import ModelBundle, pixels_to_tensor, tensor_to_pixels
from editing.schedule import VESchedule, VPSchedule


def linear_schedule(n: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> VPSchedule:
    """DDPM's linear beta schedule (Ho et al. 2020)."""
    return VPSchedule.from_betas(torch.linspace(beta_start, beta_end, n, dtype=torch.float64))


def cosine_schedule(n: int = 1000, offset: float = 0.008) -> VPSchedule:
    """Improved DDPM's cosine schedule (Nichol & Dhariwal 2021, eq. 17): abar spread evenly over t."""
    t = torch.arange(n + 1, dtype=torch.float64) / n
    f = torch.cos((t + offset) / (1 + offset) * math.pi / 2) ** 2
    return VPSchedule((f[1:] / f[0]).clamp(min=1e-8))


def prompt_offset(prompt: str, channels: int = 3) -> torch.Tensor:
    """A deterministic per-channel mean offset in [-0.5, 0.5] for a prompt; 0 for the empty prompt."""
    if prompt == "":
        return torch.zeros(channels)
    digest = hashlib.sha256(prompt.encode()).digest()
    return torch.tensor([digest[i] / 255.0 - 0.5 for i in range(channels)])


class GaussianBundle(ModelBundle):
    """ModelBundle with the exact denoiser of N(mu, s^2 I) in model space (C, h, w)."""

    def __init__(
        self,
        mu: torch.Tensor,
        s: float,
        kind: str = "vp",
        conditional: bool = False,
        schedule: VPSchedule | VESchedule | None = None,
        model_id: str = "gaussian",
    ):
        self.mu = mu.float()  # (C, h, w)
        self.s = float(s)
        self._conditional = conditional
        if schedule is None:
            schedule = linear_schedule() if kind == "vp" else VESchedule(0.01, 50.0)
        self.schedule = schedule
        self.family = "pixel-text" if conditional else ("ve" if kind == "ve" else "pixel-ddpm")
        self.model_id = model_id
        self.weights_hash = hashlib.sha256(mu.numpy().tobytes() + str(s).encode()).hexdigest()[:16]
        self.resolution = int(mu.shape[-1])
        self.calls = 0  # number of eps() calls, to check batching

    @property
    def conditional(self) -> bool:
        return self._conditional

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return tuple(self.mu.shape)

    def encode_image(self, image: np.ndarray) -> torch.Tensor:
        assert image.shape[:2] == (self.resolution, self.resolution), image.shape
        return pixels_to_tensor(image, self.device, self.dtype)

    def decode(self, x: torch.Tensor) -> np.ndarray:
        return tensor_to_pixels(x)

    def encode_prompt(self, prompts: list[str]) -> torch.Tensor | None:
        if not self._conditional:
            return None
        return torch.stack([prompt_offset(p, self.mu.shape[0]) for p in prompts])  # (B, C)

    def mean(self, cond: torch.Tensor | None, batch: int) -> torch.Tensor:
        mu = self.mu.expand(batch, *self.mu.shape)
        if cond is not None:
            mu = mu + cond.float()[:, :, None, None]
        return mu

    def eps(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        self.calls += 1
        mu = self.mean(cond, x_t.shape[0]).to(torch.float64)
        x = x_t.to(torch.float64)
        if self.kind == "vp":
            abar = self.schedule.alpha_bar(t.double().cpu()).view(-1, 1, 1, 1)
            eps = (1 - abar).sqrt() * (x - abar.sqrt() * mu) / (abar * self.s**2 + 1 - abar)
        else:
            sigma = t.double().view(-1, 1, 1, 1)
            eps = sigma * (x - mu) / (self.s**2 + sigma**2)
        return eps.to(x_t.dtype)


def pixel_mean(size: int = 8) -> torch.Tensor:
    """A smooth per-pixel mean image in [-0.6, 0.6] (3, size, size)."""
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    return 0.6 * torch.stack([xx, yy, -(xx + yy) / 2])


def gaussian_pixel(kind: str = "vp", conditional: bool = False, s: float = 0.2, size: int = 8) -> GaussianBundle:
    return GaussianBundle(pixel_mean(size), s, kind=kind, conditional=conditional)


class ToyBundle(GaussianBundle):
    """The DDPM-inversion paper's 2-D toy (Sec. 3, Fig. 3): data N((10, 10), I), model space (2, 1, 1)."""

    def __init__(self, schedule: VPSchedule | None = None):
        super().__init__(torch.full((2, 1, 1), 10.0), 1.0, kind="vp", schedule=schedule, model_id="toy2d")
        self.family = "pixel-ddpm"

    def encode_image(self, image: np.ndarray) -> torch.Tensor:  # pragma: no cover - the toy has no pixels
        raise NotImplementedError("the 2-D toy has no image space; use the sampler functions on tensors")
