"""Batched sweeps: several SDEdit configs (t0 values, seeds, guidance...) as ONE batch, and several
text edits of one inversion (T_skip, guidance) likewise (`edit_sweep`, at the end).

A sweep over t0 is the studio's realism-faithfulness curve (SDEdit, Meng et al. 2022, Fig. 3).
Run one config at a time, six t0 values cost six passes over the schedule, each at batch 1 (2 with
classifier-free guidance), which leaves a GPU (or a CPU's vector units) mostly idle. Here every
sample keeps its own exact SDEdit run, and the runs share the network calls:

    sample i: times_i = schedule.times(steps_i, t0_i)       # its own start time and n_i steps
              K_i rounds of n_i steps: total_i = n_i K_i
    right-aligned: N = max_i total_i; sample i starts at iteration N - total_i, so all finish together
    iteration j: the samples that have started go through the model in one call, each at its own
                 time (eps(x_t, t, cond) takes a (B,) time), guided with its own scale; then each
                 takes its own sampler step (`editing.samplers.ddim_step`, the same function the
                 single run uses) with noise from its own torch.Generator(seed_i)

so sample i draws exactly the random numbers, in the same order, and takes exactly the steps of
`editing.sdedit(model, guide, configs[i], mask, prompt)`: its result equals that run's to float
tolerance (only the batch size of the network call differs; tests/test_sweep.py checks it).

Supported in one batch: VP models (DDPM ancestral and DDIM), masked or not, any repeats. VE models
fall back to one `editing.sdedit` run per config: their sampler ends with an extra Tweedie call
(eq. 6 of `editing.samplers`) that would need its own slot in the right-aligned batch, and the
VE presets are unconditional 256 px models that the studio rarely sweeps.

Frames: a preview Frame every k = min(preview_every) iterations (xt/x0 are the samples' previews
side by side, `info["active"]` how many have started), then Frame(stage="done", result=[uint8
image per config, in config order], image=the results side by side).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from editing import images as im
from editing.interface import EditConfig, Frame, Guide, SDEditConfig, check_config

# editing.sdedit's and editing.inversion's helpers (private ones named here on purpose: one
# implementation of guide unpacking, the model-space mask, the final compositing and the inversion's
# checks for both the single runs and sweeps).
from editing.inversion import _check_inversion, _check_skip, regenerate_step
from editing.samplers import _batch, alpha_bars, clip_range, ddim_sigma, ddim_step, randn, to_device, working_dtype
from editing.schedule import VESchedule
from editing.sdedit import _unpack, model_mask, num_steps, paste_outside, sdedit


class _Run:
    """One config's SDEdit run, advanced one step at a time by the sweep (sdedit's loop, unrolled)."""

    def __init__(self, config: SDEditConfig, model, x_orig: torch.Tensor, offset: int):
        self.config = config
        self.times = model.schedule.times(config.steps, config.t0)
        self.abar = alpha_bars(model.schedule, self.times)
        self.n = len(self.times) - 1
        self.total = self.n * config.repeats
        self.offset = offset  # first global iteration of this run
        self.eta = 1.0 if config.sampler == "ddpm" else 0.0
        self.clip = clip_range(model)  # pixel models clamp x0_pred to (-1, 1), as sdedit's sampler does
        self.gen = torch.Generator(device="cpu").manual_seed(config.seed)
        self.x_orig = x_orig
        self.x0 = x_orig  # start of the current round
        self.x = x_orig  # current sample (the guide until the run starts)
        self.x0_pred = x_orig
        self.z: torch.Tensor | None = None

    def local(self, j: int) -> int:
        return j - self.offset

    def begin_step(self, j: int) -> None:
        """At a round's first step: draw z and noise the round's start to the exact start time."""
        if self.local(j) % self.n == 0:
            self.z = randn(self.x0.shape, self.gen, self.x0.device, self.x0.dtype)
            a = self.abar[0]
            self.x = math.sqrt(a) * self.x0 + math.sqrt(1.0 - a) * self.z

    def time(self, j: int) -> float:
        return self.times[self.local(j) % self.n]

    def end_step(self, j: int, eps: torch.Tensor, m: torch.Tensor | None) -> None:
        """`sample_vp`'s step i (noise only when the step adds some), then sdedit's mask and round end."""
        i = self.local(j) % self.n
        std = ddim_sigma(self.abar[i], self.abar[i + 1], self.eta)
        noise = randn(self.x.shape, self.gen, self.x.device, self.x.dtype) if std > 0.0 else None
        self.x, self.x0_pred = ddim_step(self.x, eps, self.abar[i], self.abar[i + 1], self.eta, noise, self.clip)
        if m is not None:  # the known region re-noised with the round's z to the next time
            a = self.abar[i + 1]
            self.x = m * self.x + (1 - m) * (math.sqrt(a) * self.x_orig + math.sqrt(1.0 - a) * self.z)
        if i == self.n - 1:  # round done: the next round starts from this output
            self.x0 = self.x if m is None else m * self.x + (1 - m) * self.x_orig


def batched_eps(model, xs: Sequence[torch.Tensor], times: Sequence[float], scales: Sequence[float],
                cond: torch.Tensor | None, uncond: torch.Tensor | None) -> list[torch.Tensor]:
    """Guided eps of several samples, each at its own time and guidance scale, in ONE model call.

    Per sample, the rows `editing.samplers.cfg_denoiser` would evaluate: (uncond, cond) for a
    scale other than 0 and 1, cond alone for scale 1, uncond alone for scale 0, the plain model
    for an unconditional one; combined as eps_u + scale (eps_c - eps_u) (Ho & Salimans 2022).
    xs: (1, C, h, w) each, in the working dtype. Returns one (1, C, h, w) eps per sample.
    """
    rows: list[tuple[torch.Tensor, float, torch.Tensor | None]] = []
    kinds: list[str] = []
    for x, t, s in zip(xs, times, scales, strict=True):
        if cond is None:
            kind = "plain"
        elif uncond is None or s == 1.0:
            kind = "cond"
        elif s == 0.0:
            kind = "uncond"
        else:
            kind = "pair"
        kinds.append(kind)
        if kind in ("uncond", "pair"):
            rows.append((x, t, uncond))
        if kind in ("cond", "pair", "plain"):
            rows.append((x, t, cond))
    x_all = torch.cat([r[0] for r in rows])  # (R, C, h, w)
    t_all = to_device(torch.tensor([float(r[1]) for r in rows], dtype=torch.float32), model.device)
    c_all = None if cond is None else torch.cat([_batch(r[2], r[0].shape[0]) for r in rows])
    out = model.eps(x_all.to(device=model.device, dtype=model.dtype), t_all, c_all).to(x_all.dtype)
    eps, r = [], 0
    for kind, s in zip(kinds, scales, strict=True):
        if kind == "pair":
            eps_u, eps_c = out[r : r + 1], out[r + 1 : r + 2]
            eps.append(eps_u + s * (eps_c - eps_u))
            r += 2
        else:
            eps.append(out[r : r + 1])
            r += 1
    return eps


def _prompt_conds(model, prompt: str, configs: Sequence) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(cond, uncond) for `batched_eps`, as `prompt_denoiser` encodes them: none for an unconditional
    model, and the "" prompt only where some config guides (a scale other than 1)."""
    if not model.conditional:
        return None, None
    cond = model.encode_prompt([prompt])
    return cond, (model.encode_prompt([""]) if any(c.guidance_scale != 1.0 for c in configs) else None)


def _strip(images: np.ndarray) -> np.ndarray:
    """(B, H, W, 3) -> (H, B * W, 3): the samples side by side."""
    return np.concatenate(list(images), axis=1)


def sdedit_sweep(
    model,
    guide: np.ndarray | Guide,
    configs: Sequence[SDEditConfig],
    mask: np.ndarray | None = None,
    prompt: str = "",
) -> Iterator[Frame]:
    """Run several SDEdit configs on one guide as one batch; each result equals `editing.sdedit`'s
    with the same config (to float tolerance). The last Frame's result is a list of uint8 images
    in config order, at the guide's size."""
    configs = [check_config(c, SDEditConfig, "sdedit_sweep") for c in configs]
    if not configs:
        raise ValueError("sdedit_sweep needs at least one SDEditConfig")
    if isinstance(model.schedule, VESchedule):
        return _sequential(model, guide, configs, mask, prompt)
    image, mask = _unpack(guide, mask)  # bad input raises here, at the call (as sdedit)
    if prompt and not model.conditional:
        warnings.warn(f"{model.model_id} is unconditional: the prompt {prompt!r} is ignored", stacklevel=2)
    return _sweep_frames(model, image, mask, configs, prompt)


@torch.no_grad()
def _sweep_frames(model, image: np.ndarray, mask: np.ndarray | None, configs: list[SDEditConfig], prompt: str) -> Iterator[Frame]:
    dtype, device = working_dtype(model), model.device
    x_orig = model.encode_image(im.to_model_size(image, model.resolution)).to(dtype)  # (1, C, h, w)
    m = model_mask(mask, model, device, dtype) if mask is not None else None
    cond, uncond = _prompt_conds(model, prompt, configs)

    totals = [num_steps(c) for c in configs]
    total = max(totals)
    runs = [_Run(c, model, x_orig, total - n) for c, n in zip(configs, totals, strict=True)]
    k = min(c.preview_every for c in configs)
    for j in range(total):
        active = [r for r in runs if j >= r.offset]
        for r in active:
            r.begin_step(j)
        eps = batched_eps(model, [r.x for r in active], [r.time(j) for r in active],
                          [r.config.guidance_scale for r in active], cond, uncond)
        for r, e in zip(active, eps, strict=True):
            r.end_step(j, e, m)
        step = j + 1
        if step % k == 0 and step < total:
            xt = model.preview(torch.cat([r.x for r in runs]))
            x0 = model.preview(torch.cat([r.x0_pred for r in runs]))
            yield Frame(step, total, "denoise", xt=_strip(xt), x0=_strip(x0), info={"active": len(active)})

    decoded = model.decode(torch.cat([r.x0 for r in runs]))  # (B, H, W, 3): one VAE batch
    results = []
    for out in decoded:
        out = im.from_model_size(out, image.shape[:2])
        if mask is not None:
            out = paste_outside(image, out, mask, model.resolution)
        results.append(out)
    yield Frame(total, total, "done", image=_strip(np.stack(results)), result=results,
                info={"latents": [r.x0 for r in runs], "configs": configs})


def edit_sweep(model, inversion, target_prompt: str, configs: Sequence[EditConfig]) -> Iterator[Frame]:
    """Several text edits as one batch: of one inversion (T_skip, target guidance), or of one inversion
    each (`inversion` a list, one per config, on the same step grid: an eta sweep from
    `editing.inversion.invert_etas`). Each result equals `editing.inversion.edit`'s with the same
    inversion and config (to float tolerance). The last Frame's result is a list of uint8 images in
    config order, at the inverted image's size.

    Every run regenerates along the same schedule and ends at its last step, so the runs are
    aligned by step: at step i the runs with T_skip <= i go through the model in one call (all at
    time t_i, each with its own guidance scale) and each takes `regenerate_step` with its map z_i.
    The sweep makes n - min(T_skip) model calls instead of sum(n - T_skip)."""
    configs = [check_config(c, EditConfig, "edit_sweep") for c in configs]
    if not configs:
        raise ValueError("edit_sweep needs at least one EditConfig")
    inversions = list(inversion) if isinstance(inversion, (list, tuple)) else [inversion] * len(configs)
    if len(inversions) != len(configs):
        raise ValueError(f"edit_sweep got {len(inversions)} inversions for {len(configs)} configs; give one, or one per config")
    for inv, c in zip(inversions, configs, strict=True):
        _check_inversion(model, inv)
        _check_skip(c.skip, inv)
        if inv.times != inversions[0].times or inv.image_shape != inversions[0].image_shape:
            raise ValueError("edit_sweep batches inversions of one image on one step grid; these differ in steps or image size")
    if target_prompt and not model.conditional:
        warnings.warn(f"{model.model_id} is unconditional: the prompt {target_prompt!r} is ignored", stacklevel=2)
    return _edit_frames(model, inversions, target_prompt, configs)


@torch.no_grad()
def _edit_frames(model, inversions: list, prompt: str, configs: list[EditConfig]) -> Iterator[Frame]:
    dtype = working_dtype(model)
    cond, uncond = _prompt_conds(model, prompt, configs)
    first = inversions[0]
    n, start = first.steps, min(c.skip for c in configs)
    abar = alpha_bars(model.schedule, first.times)
    clip = clip_range(model)
    zs = {id(inv): inv.zs.to(dtype) for inv in inversions}  # each inversion's maps once
    xs = [inv.xts[c.skip][None].to(dtype) for inv, c in zip(inversions, configs, strict=True)]  # (1, C, h, w) each
    x0s = list(xs)
    total, k = n - start, min(c.preview_every for c in configs)
    for i in range(start, n):
        active = [r for r, c in enumerate(configs) if c.skip <= i]
        eps = batched_eps(model, [xs[r] for r in active], [first.times[i]] * len(active),
                          [configs[r].guidance_scale for r in active], cond, uncond)  # fmt: skip
        for r, e in zip(active, eps, strict=True):
            inv = inversions[r]
            xs[r], x0s[r] = regenerate_step(i, xs[r], e, zs[id(inv)][i][None], abar, inv.config.eta, clip)
        step = i + 1 - start
        if step % k == 0 and step < total:
            xt, x0 = model.preview(torch.cat(xs)), model.preview(torch.cat(x0s))
            yield Frame(step, total, "denoise", xt=_strip(xt), x0=_strip(x0), info={"active": len(active)})
    decoded = model.decode(torch.cat(xs))  # one VAE batch
    results = [im.from_model_size(out, first.image_shape) for out in decoded]
    yield Frame(total, total, "done", image=_strip(np.stack(results)), result=results,
                info={"latents": xs, "configs": configs})


def _sequential(model, guide, configs: list[SDEditConfig], mask, prompt: str) -> Iterator[Frame]:
    """One `editing.sdedit` run per config (VE models), re-counted as one sweep's frames."""
    total = sum(num_steps(c) for c in configs)
    done, results, latents = 0, [], []
    for c in configs:
        for frame in sdedit(model, guide, c, mask=mask, prompt=prompt):
            if frame.done:
                results.append(frame.result)
                latents.append(frame.info.get("latents"))
            else:
                yield Frame(done + frame.step, total, "denoise", xt=frame.xt, x0=frame.x0, info={"active": 1})
        done += num_steps(c)
    yield Frame(total, total, "done", image=_strip(np.stack(results)), result=results,
                info={"latents": latents, "configs": configs})
