"""Samplers: small pure step functions, guidance as a wrapper, and a generator that yields every step.

Notation (DDPM, Ho et al. 2020, arXiv 2006.11239; DDIM, Song et al. 2021, arXiv 2010.02502;
SDEdit, Meng et al. 2022, arXiv 2108.01073):

    symbol        code          meaning
    abar_t        abar_t        cumulative product of (1 - beta) at time t (VPSchedule.alpha_bar)
    abar_prev     abar_prev     the same at the next (less noisy) time of the run
    x_t           x_t           the current sample, model space (B, C, h, w)
    eps           eps           predicted noise eps_theta(x_t, t)
    x0_pred       x0_pred       predicted clean sample, eq. (1)
    sigma_t(eta)  std           the step's noise scale, eq. (3)
    z             noise         standard normal noise the step adds (passed in explicitly)
    sigma(t)      sigma_t       VE noise level (VESchedule.sigma); score s = -eps / sigma

VP (DDIM eq. 12; DDPM is eta = 1):

    (1)  x0_pred = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)
    (2)  x_prev  = sqrt(abar_prev) x0_pred + sqrt(1 - abar_prev - sigma_t^2) eps + sigma_t z
    (3)  sigma_t(eta) = eta sqrt((1 - abar_prev) / (1 - abar_t)) sqrt(1 - abar_t / abar_prev)

    DDPM's posterior q(x_prev | x_t, x0) (Ho et al., eqs. 6-7), for any pair of times:
    (4)  mu~ = sqrt(abar_prev) beta / (1 - abar_t) x0 + sqrt(alpha) (1 - abar_prev) / (1 - abar_t) x_t,
         beta~ = (1 - abar_prev) / (1 - abar_t) beta,   alpha = abar_t / abar_prev, beta = 1 - alpha.
    With eta = 1, (2)-(3) equal (4) exactly: sigma_t(1)^2 = beta~ (see tests/test_samplers.py).

VE (SDEdit Algorithm 1, Euler-Maruyama on the reverse VE SDE):

    (5)  e = sigma(t)^2 - sigma(t - dt)^2;   x <- x + e s(x, t) + sqrt(e) z
    (6)  after the last step, Tweedie's denoising: x0 = x + sigma^2 s(x, sigma)

The noise is an argument of every step, so the same step serves ordinary sampling (fresh z) and
edit-friendly DDPM reconstruction (stored z). Guidance is a closure around the model
(`cfg_denoiser`), never a sampler option.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterator, Sequence

import torch

from editing.schedule import VESchedule, VPSchedule

# eps_fn(x_t, t) -> eps: x_t (B, C, h, w) in the working dtype, t a float in the model's own time
# variable (VP: continuous timestep; VE: sigma), or a (B,) tensor of per-row times (edit-friendly
# inversion's batched steps). Returns eps in x_t's dtype.
EpsFn = Callable[[torch.Tensor, "float | torch.Tensor"], torch.Tensor]


def working_dtype(model) -> torch.dtype:
    """Samplers keep their state in float32 (float64 if the model runs in it), whatever the model's dtype."""
    return torch.float64 if model.dtype == torch.float64 else torch.float32


def alpha_bars(schedule: VPSchedule, times: Sequence[float]) -> list[float]:
    """abar at each time of a run (float64 schedule maths, returned as Python floats)."""
    return schedule.alpha_bar(torch.tensor([float(t) for t in times], dtype=torch.float64)).tolist()


def to_device(x: torch.Tensor, device) -> torch.Tensor:
    """A CPU tensor on `device`, without making the host wait for a GPU.

    A copy to CUDA from ordinary (pageable) memory waits until the GPU has finished all the work
    queued before it; a sampler doing that at every step (its noise, its per-row times) stops the host
    from queueing the next step while the GPU runs this one. So CUDA copies go through pinned memory,
    asynchronously (torch's pinned-memory pool keeps a block until its copy is done)."""
    device = torch.device(device)
    if device.type != "cuda" or x.device.type != "cpu":
        return x.to(device)
    return x.pin_memory().to(device, non_blocking=True)


def randn(shape: Sequence[int], generator: torch.Generator, device, dtype=torch.float32) -> torch.Tensor:
    """Standard normal noise drawn on the CPU generator and then moved, so a seed gives the same
    noise on every device (cast on the device, after an asynchronous copy: `to_device`)."""
    return to_device(torch.randn(tuple(shape), generator=generator, dtype=torch.float32), device).to(dtype)


# --------------------------------------------------------------------------------------------
# VP steps
# --------------------------------------------------------------------------------------------


def predict_x0(x_t: torch.Tensor, eps: torch.Tensor, abar_t: float) -> torch.Tensor:
    """Eq. (1): the clean sample implied by the predicted noise."""
    a = float(abar_t)
    return (x_t - math.sqrt(1.0 - a) * eps) / math.sqrt(a)


def ddim_sigma(abar_t: float, abar_prev: float, eta: float) -> float:
    """Eq. (3), DDIM's eq. (16): the step's noise scale; 0 when eta = 0 or abar_prev = 1 (the clean end)."""
    a, ap = float(abar_t), float(abar_prev)
    var = (1.0 - ap) / (1.0 - a) * (1.0 - a / ap)
    return float(eta) * math.sqrt(max(var, 0.0))


def ddim_mean(x0_pred: torch.Tensor, eps: torch.Tensor, abar_prev: float, std: float) -> torch.Tensor:
    """Eq. (2) without the noise: sqrt(abar_prev) x0_pred + sqrt(1 - abar_prev - std^2) eps."""
    ap = float(abar_prev)
    return math.sqrt(ap) * x0_pred + math.sqrt(max(1.0 - ap - std * std, 0.0)) * eps


def predict_x0_clipped(
    x_t: torch.Tensor, eps: torch.Tensor, abar_t: float, clip: tuple[float, float] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(x0_pred, eps) by eq. (1). With `clip` (pixel models: (-1, 1), diffusers' `clip_sample`),
    x0_pred is clamped and eps re-derived from it, so that with eta = 1 the step is still DDPM's
    posterior (4) at the clipped x0."""
    x0_pred = predict_x0(x_t, eps, abar_t)
    if clip is None:
        return x0_pred, eps
    x0_pred = x0_pred.clamp(*clip)
    a = float(abar_t)
    return x0_pred, (x_t - math.sqrt(a) * x0_pred) / math.sqrt(1.0 - a)


def ddim_mean_and_std(
    x_t: torch.Tensor,
    eps: torch.Tensor,
    abar_t: float,
    abar_prev: float,
    eta: float,
    clip: tuple[float, float] | None = None,
) -> tuple[torch.Tensor, float, torch.Tensor]:
    """(mean, std, x0_pred) of the step x_t -> x_prev, eqs. (1)-(3). The one place both sampling
    and edit-friendly inversion compute mu_t and sigma_t (`clip`: see `predict_x0_clipped`)."""
    x0_pred, eps = predict_x0_clipped(x_t, eps, abar_t, clip)
    std = ddim_sigma(abar_t, abar_prev, eta)
    return ddim_mean(x0_pred, eps, abar_prev, std), std, x0_pred


def ddim_step(
    x_t: torch.Tensor,
    eps: torch.Tensor,
    abar_t: float,
    abar_prev: float,
    eta: float = 0.0,
    noise: torch.Tensor | None = None,
    clip: tuple[float, float] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """DDIM eq. (12) (our eq. 2) with sigma_t(eta): returns (x_prev, x0_pred).

    `noise` is the z of eq. (2); it may be None only when the step adds none (eta = 0, or the last
    step to the clean image). `clip`: see `ddim_mean_and_std`.
    """
    mean, std, x0_pred = ddim_mean_and_std(x_t, eps, abar_t, abar_prev, eta, clip)
    if std == 0.0:
        return mean, x0_pred
    if noise is None:
        raise ValueError("ddim_step: eta > 0 adds noise; pass `noise` (a standard normal tensor)")
    return mean + std * noise, x0_pred


def posterior_mean_and_std(x_t: torch.Tensor, x0: torch.Tensor, abar_t: float, abar_prev: float) -> tuple[torch.Tensor, float]:
    """DDPM's posterior q(x_prev | x_t, x0), eq. (4): (mu~, sqrt(beta~)), for any pair of times."""
    a, ap = float(abar_t), float(abar_prev)
    alpha = a / ap
    beta = 1.0 - alpha
    mean = (math.sqrt(ap) * beta / (1.0 - a)) * x0 + (math.sqrt(alpha) * (1.0 - ap) / (1.0 - a)) * x_t
    return mean, math.sqrt(max((1.0 - ap) / (1.0 - a) * beta, 0.0))


def ddpm_step(
    x_t: torch.Tensor, eps: torch.Tensor, abar_t: float, abar_prev: float, noise: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ancestral DDPM step (Ho et al., Algorithm 2, with the posterior variance beta~): x_prev ~
    q(x_prev | x_t, x0_pred). Equals `ddim_step(..., eta=1)`. Returns (x_prev, x0_pred)."""
    x0_pred = predict_x0(x_t, eps, abar_t)
    mean, std = posterior_mean_and_std(x_t, x0_pred, abar_t, abar_prev)
    if std == 0.0:
        return mean, x0_pred
    if noise is None:
        raise ValueError("ddpm_step: pass `noise` (a standard normal tensor)")
    return mean + std * noise, x0_pred


# --------------------------------------------------------------------------------------------
# VE steps
# --------------------------------------------------------------------------------------------


def ve_euler_maruyama_step(
    x: torch.Tensor, score: torch.Tensor, sigma_t: float, sigma_prev: float, noise: torch.Tensor
) -> torch.Tensor:
    """SDEdit Algorithm 1's update, eq. (5): e = sigma(t)^2 - sigma(t - dt)^2; x + e s + sqrt(e) z."""
    e = float(sigma_t) ** 2 - float(sigma_prev) ** 2
    return x + e * score + math.sqrt(max(e, 0.0)) * noise


def ve_denoise(x: torch.Tensor, score: torch.Tensor, sigma: float) -> torch.Tensor:
    """Eq. (6): Tweedie's formula, the final noise-free step of SDEdit's VE sampler."""
    return x + float(sigma) ** 2 * score


# --------------------------------------------------------------------------------------------
# Model wrappers (k-diffusion's "external" denoisers): any bundle -> eps_fn(x_t, t)
# --------------------------------------------------------------------------------------------


def clip_range(model) -> tuple[float, float] | None:
    """The range clean samples live in (pixel models: (-1, 1)); None for latents and test bundles."""
    return getattr(model, "clip_range", None)


def _per_row(t: float | torch.Tensor) -> bool:
    """Whether t is a (B,) tensor of per-row times (a float or a 0-d tensor is one time for every row)."""
    return isinstance(t, torch.Tensor) and t.ndim > 0


def _call(model, x: torch.Tensor, t: float | torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
    if _per_row(t):
        tt = to_device(t, model.device).to(torch.float32).reshape(x.shape[0])
    else:
        tt = torch.full((x.shape[0],), float(t), device=model.device, dtype=torch.float32)
    with torch.no_grad():
        return model.eps(x.to(device=model.device, dtype=model.dtype), tt, cond).to(x.dtype)


def _batch(cond: torch.Tensor, n: int) -> torch.Tensor:
    return cond if cond.shape[0] == n else cond.expand(n, *cond.shape[1:])


def cfg_denoiser(model, cond: torch.Tensor | None, uncond: torch.Tensor | None = None, scale: float = 1.0) -> EpsFn:
    """Classifier-free guidance (Ho & Salimans 2022) as a wrapper: eps_u + scale (eps_c - eps_u).

    The (uncond, cond) pair is evaluated in ONE model call (concatenated along the batch). With
    scale 1, or no `uncond`, it is one plain conditional call; with `cond` None (an unconditional
    model) a plain wrapper; with scale 0 the unconditional call alone.
    """
    if cond is None:
        return lambda x, t: _call(model, x, t, None)
    if uncond is None or scale == 1.0:
        return lambda x, t: _call(model, x, t, _batch(cond, x.shape[0]))
    if scale == 0.0:
        return lambda x, t: _call(model, x, t, _batch(uncond, x.shape[0]))

    def eps_fn(x: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        both = torch.cat([_batch(uncond, n), _batch(cond, n)])  # (2B, ...)
        tt = torch.cat([t, t]) if _per_row(t) else t
        eps_u, eps_c = _call(model, torch.cat([x, x]), tt, both).chunk(2)
        return eps_u + scale * (eps_c - eps_u)

    return eps_fn


def prompt_denoiser(model, prompt: str, scale: float) -> EpsFn:
    """eps_fn for a prompt: CFG against the "" prompt for text models, the plain model otherwise
    (callers warn when an unconditional model is given a prompt)."""
    if not model.conditional:
        return cfg_denoiser(model, None)
    cond = model.encode_prompt([prompt])
    uncond = model.encode_prompt([""]) if scale != 1.0 else None
    return cfg_denoiser(model, cond, uncond, scale)


# --------------------------------------------------------------------------------------------
# Sampling loops: generators that yield every step (improved-diffusion's shape)
# --------------------------------------------------------------------------------------------

AfterStep = Callable[[int, torch.Tensor], torch.Tensor]


def sample_vp(
    eps_fn: EpsFn,
    x: torch.Tensor,
    schedule: VPSchedule,
    times: Sequence[float],
    eta: float,
    generator: torch.Generator | None,
    noises: Sequence[torch.Tensor] | None = None,
    after_step: AfterStep | None = None,
    clip: tuple[float, float] | None = None,
) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """DDIM/DDPM sampling over descending `times` (eta = 1: ancestral DDPM; eta = 0: DDIM).

    Yields (i, x_prev, x0_pred) after step i (times[i] -> times[i+1]). Noise for step i is
    `noises[i]` if given, else drawn from `generator` on the CPU (only for steps that add noise).
    `after_step(i, x_prev)` may replace the sample (SDEdit's masked editing); `clip` clamps x0_pred.
    """
    abar = alpha_bars(schedule, times)
    for i in range(len(times) - 1):
        eps = eps_fn(x, times[i])
        std = ddim_sigma(abar[i], abar[i + 1], eta)
        noise = None
        if std > 0.0:
            noise = noises[i] if noises is not None else randn(x.shape, generator, x.device, x.dtype)
        x, x0_pred = ddim_step(x, eps, abar[i], abar[i + 1], eta, noise, clip)
        if after_step is not None:
            x = after_step(i, x)
        yield i, x, x0_pred


def sample_ve(
    eps_fn: EpsFn,
    x: torch.Tensor,
    schedule: VESchedule,
    times: Sequence[float],
    generator: torch.Generator | None,
    noises: Sequence[torch.Tensor] | None = None,
    after_step: AfterStep | None = None,
) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """SDEdit Algorithm 1 (VE): Euler-Maruyama steps over `times` (VESchedule.times), then eq. (6).

    The model is fed sigma(t); score = -eps / sigma. Yields (i, x, x0_pred) after step i; the last
    step also applies the final denoising, so its x is the clean sample.
    """
    sig = [float(schedule.sigma(t)) for t in times]
    n = len(times) - 1
    for i in range(n):
        eps = eps_fn(x, sig[i])
        x0_pred = x - sig[i] * eps
        noise = noises[i] if noises is not None else randn(x.shape, generator, x.device, x.dtype)
        x = ve_euler_maruyama_step(x, -eps / sig[i], sig[i], sig[i + 1], noise)
        if after_step is not None:
            x = after_step(i, x)
        if i == n - 1:  # eq. (6) at sigma(0) = sigma_min
            x = ve_denoise(x, -eps_fn(x, sig[n]) / sig[n], sig[n])
            if after_step is not None:
                x = after_step(n, x)
        yield i, x, x0_pred


def last(steps: Iterator[tuple[int, torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Drain a sampling generator; return the final sample."""
    tail = deque(steps, maxlen=1)
    if not tail:
        raise ValueError("the sampler ran no steps")
    return tail[0][1]
