"""Edit-friendly DDPM inversion: exact reconstruction, the paper's 2-D toy statistics, edits, colour, shift."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest
import torch

from editing.interface import ColorEditConfig, EditConfig, InversionConfig, ShiftConfig, final
from editing.inversion import Inversion, color_edit, edit, invert, invert_latents, per_step_strength, regenerate, shift
from editing.metrics import l2
from editing.samplers import alpha_bars, cfg_denoiser, clip_range, ddim_sigma, last, prompt_denoiser, sample_vp
from tests.gaussian import GaussianBundle, ToyBundle, gaussian_pixel


def _img(seed: int, shape=(8, 8)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def text():
    return gaussian_pixel(conditional=True)


@pytest.fixture(scope="module")
def inv(text):
    return final(invert(text, _img(0), "a photo of a cat", InversionConfig(steps=50, preview_every=10)))


def _latents(frames) -> torch.Tensor:
    return list(frames)[-1].info["latents"]


def test_inversion_is_a_value(inv):
    assert isinstance(inv, Inversion) and inv.steps == 50
    assert inv.xts.shape == (51, 3, 8, 8) and inv.zs.shape == (50, 3, 8, 8)
    assert inv.times[0] == 999 and inv.times[-1] == -1 and inv.image_shape == (8, 8)
    with pytest.raises(AttributeError):
        inv.zs = None


@pytest.mark.parametrize("eta,guidance", [(1.0, 3.5), (0.5, 7.0), (1.0, 1.0)])
def test_regeneration_with_source_prompt_reproduces_x0(text, eta, guidance):
    image = _img(1)
    inv = final(invert(text, image, "a photo of a cat", InversionConfig(steps=40, eta=eta, source_guidance_scale=guidance)))
    x = _latents(edit(text, inv, "a photo of a cat", EditConfig(skip=0, guidance_scale=guidance)))
    err = (x[0] - inv.xts[-1]).abs().max().item()
    assert err < 1e-4, err
    assert np.array_equal(final(edit(text, inv, "a photo of a cat", EditConfig(skip=0, guidance_scale=guidance))), image)


class _LowPrecisionGaussian(GaussianBundle):
    """The Gaussian denoiser behind a bfloat16 "network": inputs and outputs rounded to bfloat16."""

    @property
    def dtype(self) -> torch.dtype:
        return torch.bfloat16

    def eps(self, x_t, t, cond):
        return super().eps(x_t.float(), t, cond).to(torch.bfloat16)


def test_regeneration_is_exact_with_a_low_precision_model():
    """The samplers keep their state in float32 whatever the model's dtype, and with one step per call
    regeneration repeats the inversion's arithmetic, so a bfloat16 model still reconstructs to float32
    precision."""
    m = _LowPrecisionGaussian(gaussian_pixel().mu, 0.2, conditional=True)
    image = _img(8)
    frames = list(invert(m, image, "a cat", InversionConfig(steps=30, steps_per_call=1)))
    inv = frames[-1].result
    assert inv.zs.dtype == torch.float32
    x = _latents(edit(m, inv, "a cat", EditConfig(skip=0, guidance_scale=3.5)))
    assert (x[0] - inv.xts[-1]).abs().max().item() < 1e-5
    assert np.array_equal(final(edit(m, inv, "a cat", EditConfig(skip=0, guidance_scale=3.5))), image)


def test_regeneration_on_tiny_ddpm_families(tiny_pixel_text, tiny_pixel_ddpm, tiny_latent_sd):
    """Compared in model space (the latents for latent-sd) in fp32, one step per call (exact to the bit
    but for the network's own rounding; batched steps: test_batched_steps_on_tiny_networks)."""
    image = _img(2, (16, 16))
    for model in (tiny_pixel_text, tiny_pixel_ddpm, tiny_latent_sd):
        prompt = "a cat" if model.conditional else ""
        frames = list(invert(model, image, prompt, InversionConfig(steps=8, preview_every=3, steps_per_call=1)))
        inv, x0 = frames[-1].result, frames[-1].info["latents"]
        assert len(frames) == 3  # ceil(8 / 3)
        x = _latents(edit(model, inv, prompt, EditConfig(skip=0, guidance_scale=3.5)))
        err = (x - x0).abs().max().item()
        assert err < 1e-4, (model.family, err)


@pytest.mark.parametrize("k", [3, 7, 50])
def test_batched_steps_give_the_sequential_maps_in_fewer_calls(k):
    """Eq. (5)'s model calls are independent, so k steps per call extract the same maps (to rounding)
    in ceil(n / k) calls, and regeneration under the source prompt still returns x0."""
    m = gaussian_pixel(conditional=True)
    image = _img(4)
    m.calls = 0
    seq = final(invert(m, image, "a cat", InversionConfig(steps=50, steps_per_call=1)))
    assert m.calls == 50
    m.calls = 0
    frames = list(invert(m, image, "a cat", InversionConfig(steps=50, steps_per_call=k, preview_every=10)))
    bat = frames[-1].result
    assert m.calls == -(-50 // k) and [f.step for f in frames] == [10, 20, 30, 40, 50]
    assert torch.allclose(bat.xts, seq.xts, atol=1e-5) and torch.allclose(bat.zs, seq.zs, atol=1e-4)
    assert bat.config.steps_per_call == k
    x = _latents(edit(m, bat, "a cat", EditConfig(skip=0, guidance_scale=3.5)))
    assert (x[0] - bat.xts[-1]).abs().max().item() < 1e-4
    assert np.array_equal(final(edit(m, bat, "a cat", EditConfig(skip=0, guidance_scale=3.5))), image)
    # a real edit is the sequential one's, to rounding
    a = _latents(edit(m, seq, "a dog", EditConfig(skip=10, guidance_scale=7.0)))
    b = _latents(edit(m, bat, "a dog", EditConfig(skip=10, guidance_scale=7.0)))
    assert torch.allclose(a, b, atol=1e-4)


def test_batched_steps_on_tiny_networks(tiny_pixel_text, tiny_latent_sd):
    """Real UNets with per-row times: the batched maps are the sequential ones to rounding."""
    from editing.inversion import AUTO_STEPS_PER_CALL, steps_per_call

    image = _img(5, (16, 16))
    for model in (tiny_pixel_text, tiny_latent_sd):
        seq = final(invert(model, image, "a cat", InversionConfig(steps=8, steps_per_call=1)))
        bat = final(invert(model, image, "a cat", InversionConfig(steps=8, steps_per_call=3)))
        assert torch.allclose(bat.zs, seq.zs, atol=1e-3, rtol=1e-3), (model.family, (bat.zs - seq.zs).abs().max())
        x = _latents(edit(model, bat, "a cat", EditConfig(skip=0, guidance_scale=3.5)))
        # measured 2e-5 (pixel-text) and 1.2e-4 (latent-sd latents) against 6e-8 with one step per call
        assert (x[0] - bat.xts[-1]).abs().max().item() < 1e-3, model.family
    assert steps_per_call(InversionConfig()) == AUTO_STEPS_PER_CALL > 1 and steps_per_call(InversionConfig(steps_per_call=4)) == 4


@pytest.mark.parametrize("k", [1, 4])
def test_first_step_extracts_only_the_maps_an_edit_uses(k):
    """first_step f: the maps z_f .. are the full inversion's (to rounding), in ceil((n - f) / k) calls;
    an edit from T_skip >= f matches the full inversion's, and one from T_skip < f is refused."""
    m = gaussian_pixel(conditional=True)
    image = _img(6)
    full = final(invert(m, image, "a cat", InversionConfig(steps=30, steps_per_call=k)))
    m.calls = 0
    frames = list(invert(m, image, "a cat", InversionConfig(steps=30, steps_per_call=k, first_step=12, preview_every=5)))
    part = frames[-1].result
    assert m.calls == -(-18 // k) and [(f.step, f.total) for f in frames] == [(5, 18), (10, 18), (15, 18), (18, 18)]
    assert torch.isnan(part.zs[:12]).all() and not torch.isnan(part.zs[12:]).any()
    assert torch.allclose(part.zs[12:], full.zs[12:], atol=1e-4) and torch.allclose(part.xts[12:], full.xts[12:], atol=1e-5)
    for skip in (12, 20):
        a = _latents(edit(m, full, "a dog", EditConfig(skip=skip, guidance_scale=7.0)))
        b = _latents(edit(m, part, "a dog", EditConfig(skip=skip, guidance_scale=7.0)))
        assert torch.allclose(a, b, atol=1e-4) and torch.isfinite(b).all()
    assert np.array_equal(final(edit(m, part, "a cat", EditConfig(skip=12, guidance_scale=3.5))),
                          final(edit(m, full, "a cat", EditConfig(skip=12, guidance_scale=3.5))))  # fmt: skip
    with pytest.raises(ValueError, match=r"T_skip=11 needs the noise maps from step 11.*first_step <= 11"):
        edit(m, part, "a dog", EditConfig(skip=11))
    with pytest.raises(ValueError, match="T_skip=0"):
        shift(m, part, "a cat", ShiftConfig(skip=0, dx=1))
    with pytest.raises(ValueError, match="first_step"):
        InversionConfig(steps=30, first_step=30)


def test_steps_per_call_is_checked():
    with pytest.raises(ValueError, match="steps_per_call"):
        InversionConfig(steps_per_call=-1)
    m = gaussian_pixel(conditional=True)
    with pytest.raises(ValueError, match="steps_per_call"):
        next(invert_latents(cfg_denoiser(m, None), m.schedule, torch.zeros(1, 3, 8, 8), m.schedule.times(4), 1.0,
                            torch.Generator().manual_seed(0), steps_per_call=0))  # fmt: skip


def _toy_maps(n_samples: int = 2000, steps: int = 100, seed: int = 0):
    """Sample the toy's data with native DDPM noise, then invert those samples edit-friendly."""
    m = ToyBundle()
    eps_fn = cfg_denoiser(m, None)
    times = m.schedule.times(steps)
    g = torch.Generator().manual_seed(seed)
    native = torch.randn((steps, n_samples, 2, 1, 1), generator=g)
    x_T = torch.randn((n_samples, 2, 1, 1), generator=g)
    x0 = last(sample_vp(eps_fn, x_T, m.schedule, times, 1.0, None, noises=native))
    zs = deque(invert_latents(eps_fn, m.schedule, x0, times, 1.0, torch.Generator().manual_seed(seed + 1)), maxlen=1)[0][2]
    # the last step to the clean image adds no noise (its map is the residual): leave it out
    return native[:-1].reshape(steps - 1, n_samples, 2), zs[:-1].reshape(steps - 1, n_samples, 2)


def _consecutive_corr(z: torch.Tensor) -> torch.Tensor:
    a, b = z[:-1], z[1:]
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    return (a * b).mean(1) / (a.std(1) * b.std(1))  # (steps - 2, 2)


@pytest.mark.parametrize("seed", [0, 1])
def test_toy_edit_friendly_maps_have_high_variance_and_negative_correlation(seed):
    """Paper Sec. 3 / Fig. 3 toy, data N((10, 10), I): the edit-friendly maps are not standard normal
    (variance > 1, consecutive maps negatively correlated); the native maps are."""
    native, ef = _toy_maps(seed=seed)
    ef_var, native_var = ef.var(dim=1), native.var(dim=1)  # per step and coordinate
    assert ef_var.mean() > 5.0 and (ef_var > 2.0).all(), ef_var.mean()  # measured: ~15 (range ~5 .. 20)
    assert 0.95 < native_var.mean() < 1.05 and (native_var < 1.3).all()
    ef_corr, native_corr = _consecutive_corr(ef), _consecutive_corr(native)
    assert ef_corr.mean() < -0.4 and (ef_corr < -0.2).all(), ef_corr.mean()  # measured: ~ -0.50
    assert native_corr.mean().abs() < 0.02


def test_seeds_and_frames(text):
    image = _img(3)
    cfg = InversionConfig(steps=20, preview_every=6)
    frames = list(invert(text, image, "a cat", cfg))
    assert len(frames) == 4 and [f.step for f in frames] == [6, 12, 18, 20]  # ceil(20 / 6)
    assert frames[0].stage == "invert" and frames[-1].done and frames[0].xt.shape == (8, 8, 3)
    a = frames[-1].result
    b = final(invert(text, image, "a cat", cfg))
    c = final(invert(text, image, "a cat", InversionConfig(steps=20, seed=1)))
    assert torch.equal(a.xts, b.xts) and torch.equal(a.zs, b.zs)
    assert not torch.allclose(a.xts[:-1], c.xts[:-1])
    ecfg = EditConfig(skip=4, guidance_scale=7.0, preview_every=5)
    frames = list(edit(text, a, "a dog", ecfg))
    assert len(frames) == 4 and [f.step for f in frames] == [5, 10, 15, 16]  # ceil((20 - 4) / 5)
    assert all(f.total == 16 for f in frames) and frames[-1].image.shape == image.shape
    assert np.array_equal(frames[-1].result, final(edit(text, b, "a dog", ecfg)))
    before = (a.xts.clone(), a.zs.clone())
    torch.manual_seed(1234)  # the methods never touch the global RNG
    final(edit(text, a, "a dog", ecfg))
    final(shift(text, a, "a dog", ShiftConfig(dx=1)))
    assert torch.equal(a.xts, before[0]) and torch.equal(a.zs, before[1])  # the Inversion is never mutated


def test_new_seed_new_edit(tiny_pixel_text):
    """A new inversion seed draws new x_t's, hence new maps and a different edit. (On the isotropic
    Gaussian it would not: there the regeneration is linear with pixel-independent coefficients and
    edit - x0 is the same for every seed, see test_gaussian_edit_is_x0_plus_a_seed_free_offset.)"""
    image = _img(3, (16, 16))
    invs = [final(invert(tiny_pixel_text, image, "a cat", InversionConfig(steps=6, seed=s))) for s in (0, 0, 1)]
    out = [final(edit(tiny_pixel_text, inv, "a dog", EditConfig(skip=1, guidance_scale=5.0))) for inv in invs]
    assert np.array_equal(out[0], out[1]) and not np.array_equal(out[0], out[2])


def test_gaussian_edit_is_x0_plus_a_seed_free_offset(text):
    """Closed form: under N(mu, s^2 I) every step is affine in (x_t, z) with the same coefficients for
    every pixel, so regenerating under another prompt gives x0 + delta(mu_target, mu_source, skip),
    independent of the seed; delta shrinks as more steps are skipped."""
    image = _img(4)
    deltas = {}
    for seed in (0, 1):
        inv = final(invert(text, image, "a cat", InversionConfig(steps=50, seed=seed)))
        for skip in (0, 30, 45):
            x = _latents(edit(text, inv, "a dog", EditConfig(skip=skip, guidance_scale=2.0)))[0]
            deltas[seed, skip] = x - inv.xts[-1]
    for skip in (0, 30, 45):
        torch.testing.assert_close(deltas[0, skip], deltas[1, skip], atol=1e-4, rtol=0)
    norms = [deltas[0, k].norm().item() for k in (0, 30, 45)]
    assert norms[0] > norms[1] > norms[2] > 0, norms


def test_target_prompt_edits_and_skip_keeps_structure(tiny_pixel_text):
    """A different target prompt changes the image; skipping more steps stays closer to the source."""
    image = _img(4, (16, 16))
    inv = final(invert(tiny_pixel_text, image, "a cat", InversionConfig(steps=10)))
    dists = [l2(image, final(edit(tiny_pixel_text, inv, "a dog", EditConfig(skip=s, guidance_scale=7.0)))) for s in (0, 5, 9)]
    assert dists[0] > dists[1] > dists[2] > 0, dists


def test_bad_requests_then_a_good_one(text, inv):
    with pytest.raises(ValueError, match=r"skip=50 is out of range; allowed: \[0, 49\]"):
        edit(text, inv, "a dog", EditConfig(skip=50))
    for bad in (dict(steps=1), dict(eta=0.0), dict(source_guidance_scale=31.0)):
        with pytest.raises(ValueError, match="allowed|integer in"):
            InversionConfig(**bad)
    with pytest.raises(ValueError, match="allowed"):
        EditConfig(guidance_scale=-1.0)
    other = GaussianBundle(torch.zeros(3, 8, 8), 0.3, conditional=True, model_id="other")
    with pytest.raises(ValueError, match="invert the image again"):
        edit(other, inv, "a dog", EditConfig(skip=0))
    with pytest.raises(ValueError, match="VP"):
        invert(gaussian_pixel(kind="ve"), _img(0), "", InversionConfig())
    assert final(edit(text, inv, "a dog", EditConfig(skip=10))).shape == (8, 8, 3)


def test_unconditional_model_warns_on_prompt_and_odd_images():
    m = gaussian_pixel()
    rgba = np.concatenate([_img(5, (11, 6)), np.full((11, 6, 1), 128, np.uint8)], axis=2)
    with pytest.warns(UserWarning, match="unconditional"):
        inv = final(invert(m, rgba, "a cat", InversionConfig(steps=10)))
    assert inv.image_shape == (11, 6)
    out = final(edit(m, inv, "", EditConfig(skip=0)))
    assert out.shape == (11, 6, 3)


def _colour_and_mask(image: np.ndarray, channel: int, region: tuple[slice, slice]) -> tuple[np.ndarray, np.ndarray]:
    """A flat primary colour (full `channel`) and a boolean mask of `region`, both image-sized."""
    colour = np.zeros_like(image)
    colour[..., channel] = 255
    mask = np.zeros(image.shape[:2], bool)
    mask[region] = True
    return colour, mask


def test_color_edit(text, inv):
    """Pixels are independent under the Gaussian denoiser: outside the mask the regeneration is the
    source exactly; inside, the colour pulls the result towards it, more with a larger strength."""
    image = _img(0)
    red, mask = _colour_and_mask(image, 0, (slice(2, 6), slice(2, 6)))
    dists = []
    for s in (0.0, 0.3, 0.9):
        cfg = ColorEditConfig(strength=s, t1=0, t2=45, guidance_scale=3.5, preview_every=7)
        frames = list(color_edit(text, inv, red, mask, "a photo of a cat", cfg))
        assert len(frames) == 8  # ceil(50 / 7)
        out = frames[-1].result
        assert np.array_equal(out[~mask], image[~mask])
        dists.append(l2(red[mask][None], out[mask][None]))
    assert np.array_equal(final(color_edit(text, inv, red, mask, "a photo of a cat", ColorEditConfig(strength=0.0))), image)
    assert dists[0] > dists[1] > dists[2], dists
    inv1 = final(invert(text, image, "a photo of a cat", InversionConfig(steps=50, seed=1)))
    cfg = ColorEditConfig(strength=0.5, t2=45)
    a = final(color_edit(text, inv, red, mask, "a photo of a cat", cfg))
    assert np.array_equal(a, final(color_edit(text, inv, red, mask, "a photo of a cat", cfg)))
    assert not np.array_equal(a, final(color_edit(text, inv1, red, mask, "a photo of a cat", cfg)))  # new seed
    with pytest.raises(ValueError, match="empty"):
        color_edit(text, inv, red, np.zeros((8, 8), bool), "a cat", ColorEditConfig())
    with pytest.raises(ValueError, match="t1"):
        color_edit(text, inv, red, mask, "a cat", ColorEditConfig(t1=60, t2=70))


@pytest.mark.parametrize("mode", ["x0", "noise"])
def test_color_edit_can_keep_the_rest_of_the_picture(tiny_pixel_text, mode):
    """On a real network the pull inside the mask changes eps everywhere, so the rest of the picture
    drifts; `keep_outside` puts it back on the inversion's trajectory every step: outside the mask the
    result is the source exactly (a pixel model), inside it still takes the colour."""
    m = tiny_pixel_text
    image = _img(3, (m.resolution, m.resolution))
    blue, mask = _colour_and_mask(image, 2, (slice(4, 12), slice(4, 12)))
    inv = final(invert(m, image, "a cat", InversionConfig(steps=12, source_guidance_scale=3.5)))
    base = {"t2": 8, "guidance_scale": 3.5, "mode": mode, "alpha": 1.0}
    drift = final(color_edit(m, inv, blue, mask, "a cat", ColorEditConfig(**base)))
    kept = final(color_edit(m, inv, blue, mask, "a cat", ColorEditConfig(**base, keep_outside=True)))
    assert not np.array_equal(drift[~mask], image[~mask])  # the method as published: the rest moves too
    assert np.array_equal(kept[~mask], image[~mask])
    assert l2(blue[mask][None], kept[mask][None]) < l2(blue[mask][None], image[mask][None])  # still recoloured


def test_color_edit_keeps_a_photo_larger_than_the_model_exactly_outside_the_mask(tiny_pixel_text):
    """The studio's photos are 256 px and more on a 16-32 px model: "Keep the rest of the picture" kept
    the rest on the model's grid only, so the whole photo came back at the model's resolution, blurred
    (mean change 18.8 / 255 outside the mask on the astronaut)."""
    m = tiny_pixel_text
    side = 4 * m.resolution
    image = _img(5, (side, side))  # per-pixel noise: any resampling changes it
    blue, mask = _colour_and_mask(image, 2, (slice(side // 4, side // 2), slice(side // 4, side // 2)))
    inv = final(invert(m, image, "a cat", InversionConfig(steps=10)))
    assert np.array_equal(inv.image, image)
    kept = final(color_edit(m, inv, blue, mask, "a cat", ColorEditConfig(t2=6, keep_outside=True)))
    assert kept.shape == image.shape and np.array_equal(kept[~mask], image[~mask])
    assert l2(blue[mask][None], kept[mask][None]) < l2(blue[mask][None], image[mask][None])
    drift = final(color_edit(m, inv, blue, mask, "a cat", ColorEditConfig(t2=6)))  # the paper's method: regenerated
    assert not np.array_equal(drift[~mask], image[~mask])


def test_color_edit_noise_mode(text, inv):
    """The authors' push on the noise maps: outside the mask the source exactly (independent pixels),
    inside closer to the colour with a larger alpha; alpha 0 is plain regeneration."""
    image = _img(0)
    blue, mask = _colour_and_mask(image, 2, (slice(1, 5), slice(3, 7)))
    dists = []
    for a in (0.0, 0.05, 0.3):
        out = final(color_edit(text, inv, blue, mask, "a photo of a cat", ColorEditConfig(mode="noise", alpha=a, t2=45)))
        assert np.array_equal(out[~mask], image[~mask])
        dists.append(l2(blue[mask][None], out[mask][None]))
    assert dists[0] == l2(blue[mask][None], image[mask][None])
    assert dists[0] > dists[1] > dists[2], dists
    small = gaussian_pixel(conditional=True, size=4)  # an 8x8 image on a 4x4 model grid
    inv4 = final(invert(small, image, "a cat", InversionConfig(steps=10)))
    dot = np.zeros((8, 8), bool)
    dot[3, 3] = True  # a quarter of one model cell
    plain = final(color_edit(small, inv4, blue, dot, "a cat", ColorEditConfig(strength=0.0, t2=8)))
    assert not np.array_equal(final(color_edit(small, inv4, blue, dot, "a cat", ColorEditConfig(t2=8))), plain)  # x0: coverage
    with pytest.raises(ValueError, match="by half or more"):
        color_edit(small, inv4, blue, dot, "a cat", ColorEditConfig(mode="noise"))
    with pytest.raises(ValueError, match="mode"):
        ColorEditConfig(mode="latent")
    with pytest.raises(ValueError, match="alpha"):
        ColorEditConfig(mode="noise", alpha=-1.0)


def test_color_edit_noise_mode_on_latents(tiny_latent_sd):
    """Stable Diffusion: the push acts on the 8x8 latent grid of a 16 px image (VAE factor 2). With
    random weights only the mechanics can be checked: alpha 0 is plain regeneration, alpha > 0 is
    not, and a mask under half of every latent cell is refused."""
    m = tiny_latent_sd
    image = _img(2, (16, 16))
    blue, mask = _colour_and_mask(image, 2, (slice(0, 16), slice(0, 8)))
    inv = final(invert(m, image, "a cat", InversionConfig(steps=10)))
    plain = final(edit(m, inv, "a cat", EditConfig(skip=0, guidance_scale=3.5)))
    zero = final(color_edit(m, inv, blue, mask, "a cat", ColorEditConfig(mode="noise", alpha=0.0, t2=9)))
    pushed = final(color_edit(m, inv, blue, mask, "a cat", ColorEditConfig(mode="noise", alpha=0.3, t2=9)))
    assert zero.shape == pushed.shape == (16, 16, 3)
    assert np.array_equal(zero, plain) and not np.array_equal(pushed, plain)
    dot = np.zeros((16, 16), bool)
    dot[3, 3] = True  # a quarter of one latent cell
    with pytest.raises(ValueError, match="8x8 grid by half or more"):
        color_edit(m, inv, blue, dot, "a cat", ColorEditConfig(mode="noise"))


def test_a_colour_window_that_ends_before_t_skip_is_refused():
    """No step of the regeneration would take the colour: the run would quietly return the picture."""
    with pytest.raises(ValueError, match=r"t1..t2 = 0..30 end before T_skip=31"):
        ColorEditConfig(t1=0, t2=30, skip=31)
    assert ColorEditConfig(t1=0, t2=30, skip=30).skip == 30  # its last step is still pulled


def test_per_step_strength_compounds_to_the_total():
    for total, k in ((0.5, 31), (0.9, 61), (0.25, 1)):
        s = per_step_strength(total, k)
        assert 0.0 < s <= total and abs((1 - s) ** k - (1 - total)) < 1e-12
    assert per_step_strength(1.0, 30) == 1.0 and per_step_strength(0.0, 30) == 0.0 and per_step_strength(0.7, 0) == 0.0


@pytest.mark.parametrize("t1,t2,skip", [(0, 30, 0), (0, 999, 0), (0, 49, 10), (45, 999, 0), (20, 30, 25), (20, 30, 30)])
def test_pulled_steps_counts_the_steps_regeneration_pulls(text, inv, t1, t2, skip):
    """The count the strength compounds over is the number of steps the x0 hook really acts on."""
    eps_fn = prompt_denoiser(text, "a photo of a cat", 3.5)
    acted = []

    def hook(i, x0_pred):
        if t1 <= i <= t2:
            acted.append(i)
        return x0_pred

    for _ in regenerate(eps_fn, text.schedule, inv.xts[skip][None], inv.zs[:, None], inv.times, 1.0, skip, x0_hook=hook):
        pass
    assert ColorEditConfig(t1=t1, t2=t2, skip=skip).pulled_steps(inv.steps) == len(acted)


def test_regenerate_z_hook_adds_sigma_times_its_change(text, inv):
    """A z_hook's change to z_i moves x_{i+1} by sigma_i times it (the noise maps' role in eq. 5)."""
    eps_fn = prompt_denoiser(text, "a photo of a cat", 3.5)
    zs = inv.zs[:, None]
    j, delta = 7, torch.full_like(inv.zs[0][None], 0.25)

    def hook(i, z, x0_pred):
        return z + delta if i == j else z

    def run(z_hook=None):
        steps = regenerate(eps_fn, text.schedule, inv.xts[0][None], zs, inv.times, 1.0, 0, clip=clip_range(text), z_hook=z_hook)
        return {i: (x, x0) for i, x, x0 in steps}

    plain, hooked = {i: x for i, (x, _) in run().items()}, run(hook)
    assert torch.equal(plain[j - 1], hooked[j - 1][0])
    abar = alpha_bars(text.schedule, inv.times)
    sigma = ddim_sigma(abar[j], abar[j + 1], 1.0)
    assert torch.allclose(hooked[j][0] - plain[j], sigma * delta, atol=1e-5)
    assert not torch.allclose(hooked[j + 1][0], plain[j + 1])


def test_shift_rolls_the_image_under_a_translation_equivariant_model():
    """With a per-channel constant mean the exact denoiser commutes with translations, so rolling the
    noise maps and the start rolls the reconstruction exactly (the paper's shifting property, in closed form)."""
    m = GaussianBundle(torch.tensor([0.3, -0.2, 0.1])[:, None, None].expand(3, 8, 8).clone(), 0.4, conditional=True)
    image = _img(6)
    inv = final(invert(m, image, "a cat", InversionConfig(steps=30)))
    out = final(shift(m, inv, "a cat", ShiftConfig(dx=3, dy=-2, guidance_scale=3.5)))
    assert np.array_equal(out, np.roll(image, (-2, 3), axis=(0, 1)))
    assert np.array_equal(final(shift(m, inv, "a cat", ShiftConfig(guidance_scale=3.5))), image)
    frames = list(shift(m, inv, "a cat", ShiftConfig(dx=1, skip=10, preview_every=4)))
    assert len(frames) == 5  # ceil(20 / 4)
    assert np.array_equal(final(shift(m, inv, "a cat", ShiftConfig(dx=-7, dy=7, guidance_scale=3.5))), np.roll(image, (7, -7), axis=(0, 1)))
    # a circular shift by the whole side (8) is no move, and by more the same as a smaller one: refused
    for dx, dy in ((8, 0), (0, -8), (11, 1)):
        with pytest.raises(ValueError, match=r"out of range; allowed: \[-7, 7\]"):
            shift(m, inv, "a cat", ShiftConfig(dx=dx, dy=dy))


def test_shift_seeds(tiny_pixel_text):
    """On a real (nonlinear) network the shifted regeneration depends on the inversion's seed; the
    same seed gives the same result. (Under an isotropic Gaussian denoiser it would not: the whole
    regeneration is linear with pixel-independent coefficients, so the maps' randomness cancels.)"""
    image = _img(7, (16, 16))
    cfg = ShiftConfig(dx=2, dy=1)
    invs = [final(invert(tiny_pixel_text, image, "a cat", InversionConfig(steps=6, seed=s))) for s in (0, 0, 1)]
    out = [final(shift(tiny_pixel_text, inv, "a cat", cfg)) for inv in invs]
    assert np.array_equal(out[0], out[1]) and not np.array_equal(out[0], out[2])
