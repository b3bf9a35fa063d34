"""Noise schedules as immutable values.

Notation (DDPM, Ho et al. 2020; DDIM, Song et al. 2021):

    x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps            (VP, "variance preserving")
    x_sigma = x_0 + sigma z                                   (VE, "variance exploding")

VP time is *continuous* in [-1, T-1] in units of training timesteps: index t of the trained
`alphas_cumprod` is time t, and time -1 is the clean image (abar = 1, as diffusers'
`set_alpha_to_one`). Between integers, log(abar) is interpolated linearly, so SDEdit's t0 maps to an
exact start time and neighbouring t0 values never collapse onto one start step. The model is fed the
fractional timestep (sinusoidal embeddings are defined for real t).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch


@dataclass(frozen=True, eq=False)
class VPSchedule:
    alphas_cumprod: torch.Tensor  # (T,) float64, decreasing, abar_t for t = 0..T-1
    # log(abar) with time -1 prepended, per device it was asked on (a cache, not part of the value)
    _tables: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def num_train_timesteps(self) -> int:
        return int(self.alphas_cumprod.shape[0])

    @staticmethod
    def from_betas(betas: torch.Tensor) -> VPSchedule:
        return VPSchedule(torch.cumprod(1.0 - betas.double(), dim=0))

    @staticmethod
    def from_diffusers(scheduler) -> VPSchedule:
        """From any diffusers VP scheduler (DDPM/DDIM/...): reuse its `alphas_cumprod`."""
        return VPSchedule(scheduler.alphas_cumprod.detach().double().cpu().clone())

    def alpha_bar(self, t: float | torch.Tensor) -> torch.Tensor:
        """abar at continuous time t in [-1, T-1] (float64 tensor of t's shape)."""
        t = torch.as_tensor(t, dtype=torch.float64)
        if bool(((t < -1.0 - 1e-9) | (t > self.num_train_timesteps - 1 + 1e-9)).any()):
            raise ValueError(f"time {t.tolist()} outside [-1, {self.num_train_timesteps - 1}]")
        return self.alpha_bar_unchecked(t)

    def alpha_bar_unchecked(self, t: torch.Tensor) -> torch.Tensor:
        """`alpha_bar` on t's own device, without the range check (times out of range are clamped).

        For a network's output conversion on a GPU (`editing.models.common.to_eps`): the check, or
        moving t to the host, would make the host wait for the GPU at every step. The sampler checked
        the run's times when it started."""
        t = t.to(torch.float64)
        log_ab = self._log_table(t.device)  # index i = time i-1
        pos = (t + 1.0).clamp(0, self.num_train_timesteps)
        lo = pos.floor().long().clamp(max=self.num_train_timesteps)
        hi = (lo + 1).clamp(max=self.num_train_timesteps)
        w = pos - lo.double()
        return torch.exp(log_ab[lo] * (1 - w) + log_ab[hi] * w)

    def _log_table(self, device: torch.device) -> torch.Tensor:
        table = self._tables.get(device)
        if table is None:
            table = torch.cat([torch.zeros(1, dtype=torch.float64), self.alphas_cumprod.log()]).to(device)
            self._tables[device] = table
        return table

    def start_time(self, t0: float) -> float:
        """SDEdit's t0 in (0, 1] as a continuous start time: t0 = 1 is the last trained timestep."""
        return t0 * self.num_train_timesteps - 1.0

    def times(self, steps: int, t0: float = 1.0) -> list[float]:
        """Descending times of a sampling run from t0 down to the clean image, both ends included.

        For t0 = 1 this is diffusers' "trailing" spacing (999, 989, ..., 9, then -1 for 100 steps
        of a 1000-step schedule); for t0 < 1 the run takes ceil(t0 * steps) equal steps from the
        exact start time. Returns n + 1 times; step i goes from times[i] to times[i + 1].
        """
        t_start = self.start_time(t0)
        n = max(1, math.ceil(t0 * steps - 1e-9))
        return [t_start + (-1.0 - t_start) * i / n for i in range(n + 1)]


@dataclass(frozen=True, eq=False)
class VESchedule:
    """sigma(t) = sigma_min (sigma_max / sigma_min)^t for t in [0, 1] (Song et al. 2021, VE SDE)."""

    sigma_min: float
    sigma_max: float

    @staticmethod
    def from_diffusers(scheduler) -> VESchedule:
        cfg = scheduler.config
        return VESchedule(float(cfg.sigma_min), float(cfg.sigma_max))

    def sigma(self, t: float | torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=torch.float64)
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** t

    def times(self, steps: int, t0: float = 1.0) -> list[float]:
        """SDEdit Algorithm 1's grid: t_n = t0 * n / N for n = N..1, then 0 (N = ceil(t0 * steps))."""
        n = max(1, math.ceil(t0 * steps - 1e-9))
        return [t0 * (n - i) / n for i in range(n + 1)]
