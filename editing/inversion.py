"""Edit-friendly DDPM inversion (Huberman-Spiegelglas, Kulikov, Michaeli, CVPR 2024, arXiv 2304.06140).

Reference code: inbarhub/DDPM_inversion, `inversion_forward_process` / `inversion_reverse_process`.
With the run's times t_0 > t_1 > ... > t_n = -1 (VPSchedule.times(steps): t_n is the clean image):

    invert (paper Alg. 1):
      (6)  x_{t_i} = sqrt(abar_i) x0 + sqrt(1 - abar_i) eps_i,  eps_i ~ N(0, I) INDEPENDENT, i < n
      (5)  z_i = (x_{t_{i+1}} - mu_i(x_{t_i})) / sigma_i,   i = 0..n-1 (noisiest first)
           mu_i, sigma_i: DDIM eq. (12) with sigma_i = eta * DDIM's sigma (editing.samplers.ddim_mean_and_std),
           eps from the model under the source prompt with source guidance (CFG).
           x_{t_{i+1}} is then recomputed as mu_i + sigma_i z_i (the reference's "correction to avoid
           error accumulation"), so regeneration repeats the inversion's arithmetic exactly.
    regenerate (the paper's eq. (4) with the stored z's):
           x_{t_{i+1}} = mu_i(x_{t_i}; target prompt, target guidance) + sigma_i z_i,
           starting at x_{t_skip} (skipping the `skip` noisiest steps, the paper's T - T_skip).

The model calls of (5) are independent (every x_{t_i} is drawn from x0 alone), so `invert` runs
`InversionConfig.steps_per_call` of them as one batch with per-row times; the correction above then
applies to the samples the model has not yet seen (see `invert_latents`).

The last step goes to the clean image (abar = 1), where sigma = 0 for every eta: there is no noise
to extract. We KEEP that step's map as the residual z_{n-1} = x0 - mu_{n-1} (unit scale), so that
regeneration with the source prompt returns x0 to float precision; in an edit it carries the
source's finest detail (the reference code zeroes it; it also loses exactness there). That holds
when the regeneration's guidance equals the inversion's (`EditConfig.guidance_scale` =
`InversionConfig.source_guidance_scale`): the defaults differ (the paper's 15 against 3.5; the emoji
model edits at 3.0), so an "edit" to the source prompt itself redraws the picture somewhat.

The grid differs from the reference's on latent models: it takes diffusers' DDIM timesteps (981, 961,
..., 1 for Stable Diffusion at 50 steps, ending at abar_0), this module `VPSchedule.times` ("trailing":
999, 979, ..., 19, ending at abar = 1). Step-by-step comparisons with the reference do not line up;
the method is the same.

Note: our mu uses DDIM's sqrt(1 - abar_prev - sigma^2), with sigma^2 = eta^2 var; the reference code
writes eta * var there, which agrees for the paper's eta = 1 only.

Colour manipulation and image shift (the paper's simple manipulations of the noise maps): see
`color_edit` and `shift`.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from editing import images as im
from editing.interface import AUTO_STEPS_PER_CALL, ColorEditConfig, EditConfig, Frame, InversionConfig, ShiftConfig, check_config
from editing.samplers import (
    EpsFn,
    alpha_bars,
    clip_range,
    ddim_mean,
    ddim_mean_and_std,
    ddim_sigma,
    predict_x0_clipped,
    prompt_denoiser,
    randn,
    working_dtype,
)
from editing.schedule import VPSchedule
from editing.sdedit import paste_outside


@dataclass(frozen=True, eq=False)
class Inversion:
    """The edit-friendly noise space of one image: a value, never hidden state.

    xts:   (n + 1, C, h, w) samples at `times`; xts[n] is x0, the encoded image
    zs:    (n, C, h, w) noise maps; z_i takes xts[i] to xts[i + 1]; zs[n - 1] is the residual of the
           final, noise-free step (see the module doc)
    times: the n + 1 descending continuous times (VPSchedule.times(steps)); times[n] = -1
    """

    xts: torch.Tensor
    zs: torch.Tensor
    times: tuple[float, ...]
    source_prompt: str
    config: InversionConfig
    model_id: str
    weights_hash: str
    image_shape: tuple[int, int]  # (H, W) of the input image: results come back at this size
    image: np.ndarray | None = None  # the input image itself, uint8 (H, W, 3): what a colour edit keeps outside its mask

    @property
    def steps(self) -> int:
        return len(self.times) - 1

    def __repr__(self) -> str:  # the tensors' summaries, not their hundreds of lines of numbers
        return (f"Inversion(steps={self.steps}, xts={tuple(self.xts.shape)} {self.xts.dtype}, zs={tuple(self.zs.shape)}, "
                f"source_prompt={self.source_prompt!r}, image_shape={self.image_shape}, model_id={self.model_id!r}, "
                f"config={self.config})")  # fmt: skip


# --------------------------------------------------------------------------------------------
# The maths on tensors (used by the methods below and by tests on toy data)
# --------------------------------------------------------------------------------------------


def _draw_samples(schedule: VPSchedule, x0: torch.Tensor, times, generator: torch.Generator, steps_per_call: int,
                  first: int) -> tuple[list[float], torch.Tensor]:  # fmt: skip
    """Eq. (6): (abar, xts) with xts[i] = sqrt(abar_i) x0 + sqrt(1 - abar_i) eps_i, eps_i independent, and
    xts[n] = x0; checks the batching arguments first."""
    if steps_per_call < 1:
        raise ValueError(f"steps_per_call={steps_per_call}; allowed: an integer >= 1")
    n = len(times) - 1
    if not 0 <= first < n:
        raise ValueError(f"first={first}; allowed: [0, {n - 1}] for {n} steps")
    abar = alpha_bars(schedule, times)
    noise = randn((n, *x0.shape), generator, x0.device, x0.dtype)
    xts = torch.empty((n + 1, *x0.shape), device=x0.device, dtype=x0.dtype)
    for i in range(n):
        xts[i] = math.sqrt(abar[i]) * x0 + math.sqrt(1.0 - abar[i]) * noise[i]
    xts[n] = x0
    return abar, xts


def _eps_steps(eps_fn: EpsFn, xts: torch.Tensor, times, lo: int, hi: int) -> torch.Tensor:
    """The model's eps at xts[lo:hi] in one call, rows step-major with per-row times: (hi - lo, B, C, h, w)."""
    if hi - lo == 1:
        return eps_fn(xts[lo], times[lo])[None]
    batch = xts.shape[1]
    t = torch.tensor([float(times[i]) for i in range(lo, hi)], dtype=torch.float32)
    return eps_fn(xts[lo:hi].flatten(0, 1), t.repeat_interleave(batch)).view(hi - lo, *xts.shape[1:])


def invert_latents(
    eps_fn: EpsFn,
    schedule: VPSchedule,
    x0: torch.Tensor,
    times,
    eta: float,
    generator: torch.Generator,
    clip: tuple[float, float] | None = None,
    steps_per_call: int = 1,
    first: int = 0,
) -> Iterator[tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Eqs. (6) and (5) on tensors x0 (B, C, h, w). Yields (i, xts, zs, x0_pred) after extracting z_i;
    xts (n + 1, B, C, h, w) and zs (n, B, C, h, w) are filled in place as it goes.

    `steps_per_call` k: eq. (5)'s model calls are independent (the x_t are independent draws), so
    k steps go through `eps_fn` as one batch of k * B rows with per-row times. The reference's
    correction x_{t_{i+1}} <- mu_i + sigma_i z_i is applied only to samples the model has not yet
    seen, so xts always holds what the model was given; with k = 1 that is every sample (the
    reference's order and arithmetic exactly), with k > 1 regeneration matches it to rounding.

    `first`: extract z_first .. z_{n-1} only (zs[:first] stay NaN); every x_t is still drawn, so the
    maps extracted are the full inversion's (to rounding: xts[first] is then the uncorrected draw)."""
    abar, xts = _draw_samples(schedule, x0, times, generator, steps_per_call, first)
    n = len(times) - 1
    zs = torch.empty((n, *x0.shape), device=x0.device, dtype=x0.dtype)
    zs[:first] = float("nan")  # not extracted: a regeneration that used them would show it
    for lo in range(first, n, steps_per_call):
        hi = min(lo + steps_per_call, n)
        eps_all = _eps_steps(eps_fn, xts, times, lo, hi)
        for i in range(lo, hi):
            mean, std, x0_pred = ddim_mean_and_std(xts[i], eps_all[i - lo], abar[i], abar[i + 1], eta, clip)
            if std > 0.0:
                zs[i] = (xts[i + 1] - mean) / std  # eq. (5)
                if i + 1 >= hi:  # not yet given to the model: the reference's correction
                    xts[i + 1] = mean + std * zs[i]
            else:  # the clean end: keep the residual so regeneration is exact
                zs[i] = xts[i + 1] - mean
            yield i, xts, zs, x0_pred


def invert_latents_etas(
    eps_fn: EpsFn,
    schedule: VPSchedule,
    x0: torch.Tensor,
    times,
    etas: Sequence[float],
    generator: torch.Generator,
    clip: tuple[float, float] | None = None,
    steps_per_call: int = 1,
    first: int = 0,
) -> Iterator[tuple[int, torch.Tensor, list[torch.Tensor]]]:
    """Eqs. (6) and (5) for several eta with one set of model calls: the x_t are drawn from x0 alone
    (eq. 6, the same draws as `invert_latents` with this generator), so the model's eps at them does
    not depend on eta; only mu_i and sigma_i do. No float correction is applied: xts holds the pure
    draws the model saw, and regeneration repeats each inversion to rounding (as `invert_latents`
    with steps_per_call > 1). Yields (steps done, xts, [zs per eta]) after each model call."""
    abar, xts = _draw_samples(schedule, x0, times, generator, steps_per_call, first)
    n = len(times) - 1
    zs = [torch.full((n, *x0.shape), float("nan"), device=x0.device, dtype=x0.dtype) for _ in etas]
    for lo in range(first, n, steps_per_call):
        hi = min(lo + steps_per_call, n)
        eps_all = _eps_steps(eps_fn, xts, times, lo, hi)
        for i in range(lo, hi):
            for z, eta in zip(zs, etas, strict=True):
                mean, std, _ = ddim_mean_and_std(xts[i], eps_all[i - lo], abar[i], abar[i + 1], eta, clip)
                z[i] = (xts[i + 1] - mean) / std if std > 0.0 else xts[i + 1] - mean  # eq. (5); the clean end's residual
        yield hi, xts, zs


X0Hook = Callable[[int, torch.Tensor], torch.Tensor]
ZHook = Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor]  # (i, z_i, x0_pred) -> the z_i to use


def regenerate(
    eps_fn: EpsFn,
    schedule: VPSchedule,
    x: torch.Tensor,
    zs: torch.Tensor,
    times,
    eta: float,
    start: int = 0,
    x0_hook: X0Hook | None = None,
    clip: tuple[float, float] | None = None,
    z_hook: ZHook | None = None,
    after_step: Callable[[int, torch.Tensor], torch.Tensor] | None = None,
) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """x_{i+1} = mu_i(x_i) + sigma_i z_i for i = start..n-1 from x = x_{t_start}; yields (i, x, x0_pred).

    `x0_hook(i, x0_pred)` may change the predicted x0 before the step's mean is formed, and
    `z_hook(i, z_i, x0_pred)` the noise map the step adds (colour edits); `after_step(i, x_{i+1})`
    may replace the new sample (a colour edit that keeps the rest of the picture).
    """
    abar = alpha_bars(schedule, times)
    for i in range(start, len(times) - 1):
        x, x0_pred = regenerate_step(i, x, eps_fn(x, times[i]), zs[i], abar, eta, clip, x0_hook, z_hook)
        if after_step is not None:
            x = after_step(i, x)
        yield i, x, x0_pred


def regenerate_step(
    i: int,
    x: torch.Tensor,
    eps: torch.Tensor,
    z: torch.Tensor,
    abar: Sequence[float],
    eta: float,
    clip: tuple[float, float] | None = None,
    x0_hook: X0Hook | None = None,
    z_hook: ZHook | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of `regenerate` from the model's eps at x_i: (x_{i+1}, x0_pred). Shared with the
    batched edit sweep (`editing.sweep.edit_sweep`), so both take the same arithmetic."""
    # = ddim_mean_and_std, spelled out so the hook can act on x0_pred before the mean is formed
    x0_pred, eps = predict_x0_clipped(x, eps, abar[i], clip)
    if x0_hook is not None:
        x0_pred = x0_hook(i, x0_pred)
    std = ddim_sigma(abar[i], abar[i + 1], eta)
    mean = ddim_mean(x0_pred, eps, abar[i + 1], std)
    if z_hook is not None:
        z = z_hook(i, z, x0_pred)
    return mean + (std if std > 0.0 else 1.0) * z, x0_pred  # the last map is the unit-scale residual


# --------------------------------------------------------------------------------------------
# The methods: images in, Frames out
# --------------------------------------------------------------------------------------------


def _require_vp(model) -> None:
    if not isinstance(model.schedule, VPSchedule):
        raise ValueError(f"DDPM inversion needs a VP (DDPM) model; {model.model_id} is a VE score model")


def _denoiser(model, prompt: str, scale: float) -> EpsFn:
    if prompt and not model.conditional:
        warnings.warn(f"{model.model_id} is unconditional: the prompt {prompt!r} is ignored", stacklevel=3)
    return prompt_denoiser(model, prompt, scale)


def _check_inversion(model, inversion: Inversion) -> None:
    if not isinstance(inversion, Inversion):
        raise ValueError(f"expected an Inversion (the result of invert), got {type(inversion).__name__}")
    if inversion.model_id != model.model_id or inversion.weights_hash != model.weights_hash:
        raise ValueError(
            f"this inversion was made with model {inversion.model_id!r}; invert the image again with {model.model_id!r}"
        )


def _check_skip(skip: int, inversion: Inversion) -> None:
    n, first = inversion.steps, inversion.config.first_step
    if not 0 <= skip < n:
        raise ValueError(f"skip={skip} is out of range; allowed: [0, {n - 1}] for an inversion with {n} steps")
    if skip < first:
        raise ValueError(f"T_skip={skip} needs the noise maps from step {skip}, and this inversion has them from step "
                         f"{first} (its first_step): invert again with first_step <= {skip}, or use T_skip >= {first}")  # fmt: skip


def steps_per_call(config: InversionConfig) -> int:
    """The inversion's steps per model call: the config's, or AUTO_STEPS_PER_CALL for 0 (auto)."""
    return config.steps_per_call or AUTO_STEPS_PER_CALL


def invert(model, image: np.ndarray, source_prompt: str, config: InversionConfig) -> Iterator[Frame]:
    """Invert an image (uint8 (H, W, 3), any size) into edit-friendly noise maps.

    Yields a Frame(stage="invert") every `preview_every` steps below the total, then
    Frame(stage="done", result=Inversion): ceil((steps - first_step) / k) frames, counted from first_step.
    """
    check_config(config, InversionConfig, "invert")
    _require_vp(model)
    image = im.load_image(image)
    return _invert_frames(model, image, source_prompt, config, _denoiser(model, source_prompt, config.source_guidance_scale))


def _start(model, image: np.ndarray, config: InversionConfig) -> tuple[torch.Tensor, list[float], torch.Generator]:
    """An inversion's inputs: the encoded image x0 (1, C, h, w), the step grid and the seeded generator."""
    x0 = model.encode_image(im.to_model_size(image, model.resolution)).to(working_dtype(model))
    return x0, model.schedule.times(config.steps), torch.Generator(device="cpu").manual_seed(config.seed)


def _value(model, image: np.ndarray, source_prompt: str, config: InversionConfig, times, xts: torch.Tensor,
           zs: torch.Tensor) -> Inversion:  # fmt: skip
    """The Inversion of batch row 0 of xts (n + 1, 1, ...) and zs (n, 1, ...)."""
    return Inversion(xts=xts[:, 0], zs=zs[:, 0], times=tuple(float(t) for t in times), source_prompt=source_prompt,
                     config=config, model_id=model.model_id, weights_hash=model.weights_hash,
                     image_shape=tuple(image.shape[:2]), image=np.ascontiguousarray(image))  # fmt: skip


@torch.no_grad()
def _invert_frames(model, image: np.ndarray, source_prompt: str, config: InversionConfig, eps_fn: EpsFn) -> Iterator[Frame]:
    x0, times, gen = _start(model, image, config)
    n, k, first = len(times) - 1, config.preview_every, config.first_step
    state = None
    per_call = steps_per_call(config)
    for state in invert_latents(eps_fn, model.schedule, x0, times, config.eta, gen, clip_range(model), per_call, first):
        i, xts, _, x0_pred = state
        if (i + 1 - first) % k == 0 and i + 1 < n:
            yield Frame(i + 1 - first, n - first, "invert", xt=model.preview(xts[i])[0], x0=model.preview(x0_pred)[0])
    _, xts, zs, _ = state
    yield Frame(n - first, n - first, "done", result=_value(model, image, source_prompt, config, times, xts, zs),
                info={"latents": x0})  # fmt: skip


def invert_etas(model, image: np.ndarray, source_prompt: str, configs: Sequence[InversionConfig]) -> Iterator[Frame]:
    """Several inversions of one image that differ only in eta (an eta sweep) for the model calls of
    one (`invert_latents_etas`). Frames: Frame(stage="invert") after each model call, then
    Frame(stage="done", result=[Inversion per config, in config order]). Each inversion equals
    `invert`'s with its config to rounding."""
    _require_vp(model)
    configs = [check_config(c, InversionConfig, "invert_etas") for c in configs]
    if not configs:
        raise ValueError("invert_etas needs at least one InversionConfig")
    base = dataclasses.replace(configs[0], eta=1.0, preview_every=1)
    for c in configs:
        if dataclasses.replace(c, eta=1.0, preview_every=1) != base:
            raise ValueError("invert_etas shares the model calls of inversions that differ only in eta; these differ in "
                             f"more: {configs[0]} and {c}")  # fmt: skip
    image = im.load_image(image)
    eps_fn = _denoiser(model, source_prompt, base.source_guidance_scale)
    return _invert_etas_frames(model, image, source_prompt, configs, eps_fn)


@torch.no_grad()
def _invert_etas_frames(model, image, source_prompt: str, configs: list[InversionConfig], eps_fn: EpsFn) -> Iterator[Frame]:
    c0 = configs[0]
    x0, times, gen = _start(model, image, c0)
    n, first = len(times) - 1, c0.first_step
    state = None
    run = invert_latents_etas(eps_fn, model.schedule, x0, times, [c.eta for c in configs], gen, clip_range(model),
                              steps_per_call(c0), first)  # fmt: skip
    for state in run:
        done, xts, _ = state
        if done < n:
            yield Frame(done - first, n - first, "invert", xt=model.preview(xts[done - 1])[0])
    _, xts, zs = state
    invs = [_value(model, image, source_prompt, c, times, xts, z) for c, z in zip(configs, zs, strict=True)]
    yield Frame(n - first, n - first, "done", result=invs, info={"latents": x0})


@torch.no_grad()
def _run(
    model, inversion: Inversion, eps_fn: EpsFn, x: torch.Tensor, zs: torch.Tensor, start: int, k: int, x0_hook=None, z_hook=None,
    after_step=None,
):  # fmt: skip
    n = inversion.steps
    total = n - start
    run = regenerate(eps_fn, model.schedule, x[None], zs[:, None], inversion.times, inversion.config.eta, start,
                     x0_hook=x0_hook, clip=clip_range(model), z_hook=z_hook, after_step=after_step)  # fmt: skip
    for i, x, x0_pred in run:  # x: (1, C, h, w)
        step = i + 1 - start
        if step % k == 0 and step < total:
            yield Frame(step, total, "denoise", xt=model.preview(x)[0], x0=model.preview(x0_pred)[0])
    out = im.from_model_size(model.decode(x)[0], inversion.image_shape)
    yield Frame(total, total, "done", image=out, result=out, info={"latents": x})


def edit(model, inversion: Inversion, target_prompt: str, config: EditConfig) -> Iterator[Frame]:
    """Regenerate from the noise maps under a target prompt, skipping the `skip` noisiest steps.

    Frames: ceil((steps - skip) / k) (previews below the total, then the done frame with the image).
    """
    check_config(config, EditConfig, "edit")
    _check_inversion(model, inversion)
    _check_skip(config.skip, inversion)
    eps_fn = _denoiser(model, target_prompt, config.guidance_scale)
    dtype = working_dtype(model)
    x = inversion.xts[config.skip].to(dtype)
    return _run(model, inversion, eps_fn, x, inversion.zs.to(dtype), config.skip, config.preview_every)


def per_step_strength(total: float, k: int) -> float:
    """The per-step pull s that compounds to `total` over k steps: 1 - (1 - s)^k = total."""
    if k <= 0 or total <= 0.0:
        return 0.0
    return 1.0 if total >= 1.0 else 1.0 - (1.0 - total) ** (1.0 / k)


def color_edit(
    model,
    inversion: Inversion,
    color_image: np.ndarray,
    mask: np.ndarray,
    prompt: str,
    config: ColorEditConfig,
) -> Iterator[Frame]:
    """Colour manipulation through the edit-friendly noise maps (arXiv 2304.06140, "color manipulation").

    During regeneration with `prompt`, at each step i with t1 <= i <= t2 (counted from the noisiest
    step, as skip is; steps outside the run are unaffected), the colour image c = encode(colour
    image) is pushed in inside the mask. Mode "x0" (default) pulls the predicted clean image towards
    c inside the model-space mask B (the mask's area coverage on the model grid):

        x0_pred' = x0_pred + s B (c - x0_pred)                       (= (1 - s) x0_pred + s c where B = 1)
        x_{i+1}  = sqrt(abar_{i+1}) x0_pred' + sqrt(1 - abar_{i+1} - sigma_i^2) eps + sigma_i z_i

    with eps the model's prediction (re-derived from the clipped x0 for pixel models), unchanged by
    the pull, and s the per-step pull that compounds to `strength` over the k pulled steps
    (`per_step_strength`). This is exactly a push on the noise maps,
    z_i' = z_i + sqrt(abar_{i+1}) s B (c - x0_pred) / sigma_i, so the trajectory and every later step
    follow; parametrised by x0, strength is a share of the colour difference in image terms.
    Mode "noise" is the authors' code (DDPM_inversion issue 3): B thresholded at 1/2 and, on [0, 1]
    images, z_i' = z_i + alpha B (c - x0_pred), i.e. alpha B (c - x0_pred) / 2 on our [-1, 1] scale.
    With strength 0 or alpha 0 (or an empty step range) this is plain regeneration, i.e. the source image.
    """
    check_config(config, ColorEditConfig, "color_edit")
    _check_inversion(model, inversion)
    n = inversion.steps
    _check_skip(config.skip, inversion)
    if config.t1 >= n:
        raise ValueError(f"t1={config.t1} is out of range; allowed: [0, {n - 1}] for an inversion with {n} steps")
    color = im.load_image(color_image)
    H, W = inversion.image_shape
    if color.shape[:2] != (H, W):
        raise ValueError(f"the colour image is {color.shape[:2]}; it must match the inverted image's (H, W) = {(H, W)}")
    m = im.check_mask(mask, (H, W), "color mask")
    if not m.any():
        raise ValueError("the colour mask is empty: paint the region to recolour")
    dtype = working_dtype(model)
    c = model.encode_image(im.to_model_size(color, model.resolution)).to(dtype)
    _, h, w = model.latent_shape
    b = torch.from_numpy(im.mask_coverage(m, (h, w)))[None, None].to(device=c.device, dtype=dtype)
    eps_fn = _denoiser(model, prompt, config.guidance_scale)
    x = inversion.xts[config.skip].to(dtype)
    zs = inversion.zs.to(dtype)
    keep = None
    if config.keep_outside:  # the rest of the picture stays on the source's own trajectory

        def keep(i: int, x_next: torch.Tensor) -> torch.Tensor:
            return b * x_next + (1 - b) * inversion.xts[i + 1].to(device=x_next.device, dtype=x_next.dtype)[None]

    if config.mode == "noise":  # the authors' code: a binary mask, images on [0, 1], a push on z_i
        b_bin = (b >= 0.5).to(dtype)
        if not b_bin.any():
            raise ValueError(
                f"the colour mask covers no cell of the model's {h}x{w} grid by half or more, so mode 'noise' "
                "(a binary mask) would change nothing: paint a larger region, or use mode 'x0'"
            )
        a = config.alpha

        def z_hook(i: int, z: torch.Tensor, x0_pred: torch.Tensor) -> torch.Tensor:
            return z + a * b_bin * (c - x0_pred) / 2 if config.t1 <= i <= config.t2 else z

        hooks = {"z_hook": z_hook}
    else:
        s = per_step_strength(config.strength, config.pulled_steps(n))

        def x0_hook(i: int, x0_pred: torch.Tensor) -> torch.Tensor:
            return x0_pred + s * b * (c - x0_pred) if config.t1 <= i <= config.t2 else x0_pred

        hooks = {"x0_hook": x0_hook}
    frames = _run(model, inversion, eps_fn, x, zs, config.skip, config.preview_every, after_step=keep, **hooks)
    return _pixels_kept(frames, inversion, m, model.resolution) if config.keep_outside else frames


def _pixels_kept(frames: Iterator[Frame], inversion: Inversion, mask: np.ndarray, resolution: int) -> Iterator[Frame]:
    """keep_outside at the input's own size: outside the mask the result is the input's pixels, as
    SDEdit's masked edit is (`paste_outside`), not its regeneration at the model's resolution, which
    blurred a whole photo down to the model's 32 px."""
    for frame in frames:
        if frame.done and inversion.image is not None:
            out = paste_outside(inversion.image, frame.image, mask, resolution)
            frame = dataclasses.replace(frame, image=out, result=out)
        yield frame


def shift(model, inversion: Inversion, prompt: str, config: ShiftConfig) -> Iterator[Frame]:
    """Image shift (arXiv 2304.06140, "image shifting"): regenerate from noise maps shifted by (dx, dy).

    Every map z_i and the starting sample x_{t_skip} are rolled (torch.roll, circular) by dx
    columns and dy rows of model space (latent cells for latent models; positive = right/down).
    A roll only permutes each map's entries, so the maps keep their statistics; the strip that
    wraps around is the one region whose content the shifted maps do not describe well.
    """
    check_config(config, ShiftConfig, "shift")
    _check_inversion(model, inversion)
    _check_skip(config.skip, inversion)
    _, h, w = model.latent_shape
    for name, d, side, what in (("dx", config.dx, w, "width"), ("dy", config.dy, h, "height")):
        if abs(d) >= side:  # a circular shift by the whole side is no move; by more, the same as a smaller one
            raise ValueError(f"{name}={d} is out of range; allowed: [{1 - side}, {side - 1}], within the model space's "
                             f"{what} of {side}")  # fmt: skip
    eps_fn = _denoiser(model, prompt, config.guidance_scale)
    dtype = working_dtype(model)

    def roll(x: torch.Tensor) -> torch.Tensor:
        return torch.roll(x, shifts=(config.dy, config.dx), dims=(-2, -1))

    x = roll(inversion.xts[config.skip].to(dtype))
    return _run(model, inversion, eps_fn, x, roll(inversion.zs.to(dtype)), config.skip, config.preview_every)
