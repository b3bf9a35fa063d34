"""SDEdit (Meng et al., ICLR 2022, arXiv 2108.01073): perturb the guide to t0, denoise with the reverse SDE.

Algorithm (paper Alg. 1 for VE, Alg. 3/4 "VP" and the official code `runners/image_editing.py`):

    x0 = encode(guide)                                     # the stroke painting / composite
    repeat K times (config.repeats; the official `--sample_step`):
        z ~ N(0, I)
        VP: x = sqrt(abar(t0)) x0 + sqrt(1 - abar(t0)) z   # at the EXACT continuous start time
        VE: x = x0 + sigma(t0) z
        for each step of the reverse SDE from t0 to 0:
            x = step(x)                                    # VP: ancestral DDPM (or DDIM); VE: Euler-Maruyama
            masked: x = m * x + (1 - m) * noised(x0, t_next, z)   # the official code's mask loop (see below)
        VE: x = x + sigma_min^2 s(x)                       # final denoising
        x0 = x  (inside the mask)                          # the next round starts from this output
    image = decode(x0); masked: outside the mask, the input's pixels exactly

Masked editing: m is 1 where the user may change pixels (our `Guide.mask`), i.e. the complement of
the official code's `mask`. As in the official code, the known region is re-noised with the same z
drawn for the start; unlike it, to the level of the time the step arrives at (t_next): the official
loop uses the level of the time it left, one step noisier, so its known region ends the run noised at
the last step's level. m lives in model space: the pixel mask's area coverage on the model grid,
thresholded at > 0 (a latent cell touched by the mask may change). The decoded result is then
composited onto the input at the input's resolution with an alpha that is exactly 0 outside the
mask and feathered over a few pixels inside it only, so unmasked pixels are the input's exactly.

VP pixel models clamp the predicted x0 to [-1, 1] at every step, as diffusers' DDPM and DDIM schedulers
do by default (`clip_sample`; `editing.samplers.predict_x0_clipped`); the official code does not clip.

Frames: with total = n * K steps (n = ceil(t0 * steps)) and k = config.preview_every, a preview
Frame after every step that is a multiple of k and below total, then one Frame(stage="done") at
step total: ceil(total / k) frames in all (`num_frames`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator

import numpy as np
import torch

from editing import images as im
from editing.interface import Frame, Guide, SDEditConfig, check_config
from editing.samplers import alpha_bars, clip_range, prompt_denoiser, randn, sample_ve, sample_vp, working_dtype
from editing.schedule import VESchedule

EMPTY_MASK = "the mask is empty: paint the region to edit"


def composite_guide(background: np.ndarray, patch: np.ndarray, mask: np.ndarray) -> Guide:
    """SDEdit's image compositing: paste `patch` onto `background` where `mask` is set; the edit
    mask of the returned guide is that region (SDEdit then harmonises it)."""
    background, patch = im.load_image(background), im.load_image(patch)
    m = im.check_mask(mask, background.shape[:2])
    return Guide(im.composite(background, patch, m), mask=m)


def num_steps(config: SDEditConfig) -> int:
    """Steps one SDEdit run takes: ceil(t0 * steps) per round, times K rounds."""
    return max(1, math.ceil(config.t0 * config.steps - 1e-9)) * config.repeats


def num_frames(config: SDEditConfig) -> int:
    """Frames `sdedit` yields: a preview at each multiple of k below the total, then the final one."""
    return -(-num_steps(config) // config.preview_every)


def _unpack(guide, mask) -> tuple[np.ndarray, np.ndarray | None]:
    if isinstance(guide, Guide):
        image, mask = guide.image, guide.mask if mask is None else mask
    else:
        image = guide
    image = im.load_image(image)
    if mask is not None:
        mask = im.check_mask(mask, image.shape[:2])
        if not mask.any():
            raise ValueError(EMPTY_MASK)
        if mask.all():
            mask = None
    return image, mask


def model_mask(mask: np.ndarray, model, device, dtype) -> torch.Tensor:
    """A pixel mask (H, W) -> model-space (1, 1, h, w) in {0, 1}: cells the mask touches."""
    _, h, w = model.latent_shape
    m = im.mask_coverage(mask, (h, w)) > 0
    return torch.from_numpy(m.astype(np.float32))[None, None].to(device=device, dtype=dtype)


def paste_outside(original: np.ndarray, edited: np.ndarray, mask: np.ndarray, model_resolution: int) -> np.ndarray:
    """Composite the edit onto the original at the input's size: exact outside the mask, feathered
    inside over about one model pixel (at least 1 input pixel)."""
    radius = max(1, round(max(mask.shape) / model_resolution))
    return im.composite(original, edited, im.feather_mask(mask, radius))


def sdedit(
    model,
    guide: np.ndarray | Guide,
    config: SDEditConfig,
    mask: np.ndarray | None = None,
    prompt: str = "",
) -> Iterator[Frame]:
    """Run SDEdit on a guide (uint8 (H, W, 3) of any size, or a Guide whose mask is used when
    `mask` is None). Yields preview Frames, then Frame(stage="done", result=image) at the input size.

    Bad input (empty mask, wrong mask shape, unreadable image) raises ValueError here, at the call.
    """
    check_config(config, SDEditConfig, "sdedit")
    image, mask = _unpack(guide, mask)
    if prompt and not model.conditional:
        warnings.warn(f"{model.model_id} is unconditional: the prompt {prompt!r} is ignored", stacklevel=2)
    return _frames(model, image, mask, config, prompt_denoiser(model, prompt, config.guidance_scale))


@torch.no_grad()
def _frames(model, image: np.ndarray, mask: np.ndarray | None, config: SDEditConfig, eps_fn) -> Iterator[Frame]:
    dtype, device = working_dtype(model), model.device
    x_orig = model.encode_image(im.to_model_size(image, model.resolution)).to(dtype)  # (1, C, h, w)
    m = model_mask(mask, model, device, dtype) if mask is not None else None
    gen = torch.Generator(device="cpu").manual_seed(config.seed)
    ve = isinstance(model.schedule, VESchedule)
    times = model.schedule.times(config.steps, config.t0)
    n = len(times) - 1
    total, k = n * config.repeats, config.preview_every
    if ve:
        levels = [float(model.schedule.sigma(t)) for t in times] + [0.0]  # after step i: levels[i + 1]
    else:
        levels = alpha_bars(model.schedule, times)

    x0 = x_orig
    step = 0
    for _ in range(config.repeats):
        z = randn(x0.shape, gen, device, dtype)

        def noised(level: float, z=z) -> torch.Tensor:
            # VE: x0 + sigma z; VP: sqrt(abar) x0 + sqrt(1 - abar) z (level = abar; 1 is clean)
            return x_orig + level * z if ve else math.sqrt(level) * x_orig + math.sqrt(1.0 - level) * z

        after = None
        if m is not None:

            def after(i: int, x: torch.Tensor, noised=noised) -> torch.Tensor:
                return m * x + (1 - m) * noised(levels[i + 1])

        if ve:
            x = x0 + levels[0] * z
            run = sample_ve(eps_fn, x, model.schedule, times, gen, after_step=after)
        else:
            x = math.sqrt(levels[0]) * x0 + math.sqrt(1.0 - levels[0]) * z
            eta = 1.0 if config.sampler == "ddpm" else 0.0
            run = sample_vp(eps_fn, x, model.schedule, times, eta, gen, after_step=after, clip=clip_range(model))
        for _, x, x0_pred in run:
            step += 1
            if step % k == 0 and step < total:
                yield Frame(step, total, "denoise", xt=model.preview(x)[0], x0=model.preview(x0_pred)[0])
        x0 = x if m is None else m * x + (1 - m) * x_orig

    out = im.from_model_size(model.decode(x0)[0], image.shape[:2])
    if mask is not None:
        out = paste_outside(image, out, mask, model.resolution)
    yield Frame(total, total, "done", image=out, result=out, info={"latents": x0})
