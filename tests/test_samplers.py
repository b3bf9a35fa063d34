"""Step functions against diffusers' schedulers, DDIM(eta=1) = DDPM, guidance batching, and sampling
against the closed form of a Gaussian data distribution."""

from __future__ import annotations

import math

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler

from editing.samplers import (
    cfg_denoiser,
    ddim_sigma,
    ddim_step,
    ddpm_step,
    last,
    posterior_mean_and_std,
    predict_x0,
    sample_ve,
    sample_vp,
    ve_euler_maruyama_step,
)
from editing.schedule import VPSchedule
from tests.gaussian import GaussianBundle, ToyBundle, gaussian_pixel

SHAPE = (2, 3, 4, 4)


def _rand(seed: int, shape=SHAPE) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_ddim_step_matches_diffusers(eta):
    sched = DDIMScheduler(num_train_timesteps=1000, clip_sample=False, timestep_spacing="trailing", set_alpha_to_one=True)
    sched.set_timesteps(10)
    ours = VPSchedule.from_diffusers(sched)
    times = ours.times(10)  # trailing: 999, 899, ..., 99, -1
    assert [int(t) for t in sched.timesteps] == [round(t) for t in times[:-1]]
    for i, t in enumerate(sched.timesteps.tolist()):
        x, eps, z = _rand(3 * i), _rand(3 * i + 1), _rand(3 * i + 2)
        ref = sched.step(eps, t, x, eta=eta, variance_noise=z)
        x_prev, x0 = ddim_step(x, eps, ours.alpha_bar(times[i]), ours.alpha_bar(times[i + 1]), eta, z)
        torch.testing.assert_close(x_prev, ref.prev_sample, atol=2e-5, rtol=1e-5)
        torch.testing.assert_close(x0, ref.pred_original_sample, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_ddpm_step_matches_diffusers_1000_steps(dtype):
    """prev = t - 1. DDPMScheduler.step cannot take the noise, so we rebuild it exactly as it draws it:
    diffusers' randn_tensor with a CPU generator is torch.randn(shape, generator=g, dtype=dtype).

    In float64 (our instance's alphas_cumprod cast to float64) the two agree to 1e-10. In float32,
    diffusers forms 1 - abar_t / abar_prev in float32, which cancels near t = 0 (beta_1 = 1e-4):
    about 1e-4 absolute error at t = 1, hence the looser float32 tolerance."""
    sched = DDPMScheduler(num_train_timesteps=1000, clip_sample=False)
    ours = VPSchedule.from_diffusers(sched)
    sched.alphas_cumprod = sched.alphas_cumprod.to(dtype)
    atol = 1e-10 if dtype == torch.float64 else 3e-4
    for i, t in enumerate([999, 700, 250, 1, 0]):
        x, eps = _rand(2 * i).to(dtype), _rand(2 * i + 1).to(dtype)
        ref = sched.step(eps, t, x, generator=torch.Generator().manual_seed(100 + i))
        z = torch.randn(SHAPE, generator=torch.Generator().manual_seed(100 + i), dtype=dtype)
        x_prev, x0 = ddpm_step(x, eps, ours.alpha_bar(t), ours.alpha_bar(t - 1), z)
        torch.testing.assert_close(x_prev, ref.prev_sample, atol=atol, rtol=0)
        torch.testing.assert_close(x0, ref.pred_original_sample, atol=atol * 1e3, rtol=1e-6)  # x0 is ~800 at t=999


def test_ddpm_step_matches_diffusers_respaced():
    """Respaced (10 of 1000, leading spacing): prev is the next entry of scheduler.timesteps."""
    sched = DDPMScheduler(num_train_timesteps=1000, clip_sample=False)
    sched.set_timesteps(10)  # 900, 800, ..., 0
    ours = VPSchedule.from_diffusers(sched)
    ts = sched.timesteps.tolist() + [-1]
    for i, t in enumerate(ts[:-1]):
        x, eps = _rand(2 * i), _rand(2 * i + 1)
        ref = sched.step(eps, t, x, generator=torch.Generator().manual_seed(7 + i)).prev_sample
        z = torch.randn(SHAPE, generator=torch.Generator().manual_seed(7 + i), dtype=torch.float32)
        x_prev, _ = ddpm_step(x, eps, ours.alpha_bar(t), ours.alpha_bar(ts[i + 1]), z)
        x_ddim, _ = ddim_step(x, eps, ours.alpha_bar(t), ours.alpha_bar(ts[i + 1]), 1.0, z)
        torch.testing.assert_close(x_prev, ref, atol=2e-5, rtol=1e-5)
        torch.testing.assert_close(x_ddim, ref, atol=2e-5, rtol=1e-5)


def test_eta_one_is_ddpm_posterior_variance():
    """sigma_t(1)^2 = beta~_t = (1 - abar_prev) / (1 - abar_t) beta_t, and the means agree (DDIM Sec. 4.1)."""
    sched = ToyBundle().schedule
    betas = 1 - sched.alphas_cumprod[1:] / sched.alphas_cumprod[:-1]
    for t in [1, 10, 500, 999]:
        a, ap = float(sched.alpha_bar(t)), float(sched.alpha_bar(t - 1))
        beta_tilde = (1 - ap) / (1 - a) * float(betas[t - 1])
        assert ddim_sigma(a, ap, 1.0) ** 2 == pytest.approx(beta_tilde, rel=1e-9)
        x, eps = _rand(t), _rand(t + 1)
        mean, std = posterior_mean_and_std(x, predict_x0(x, eps, a), a, ap)
        torch.testing.assert_close(ddim_step(x, eps, a, ap, 1.0, torch.zeros(SHAPE))[0], mean, atol=1e-5, rtol=1e-5)
        assert std == pytest.approx(math.sqrt(beta_tilde), rel=1e-9)
    assert ddim_sigma(0.5, 1.0, 1.0) == 0.0  # the last step to the clean image adds no noise


def test_ddim_step_needs_noise_when_eta_positive():
    x = _rand(0)
    with pytest.raises(ValueError, match="noise"):
        ddim_step(x, x, 0.5, 0.6, 1.0, None)
    assert ddim_step(x, x, 0.5, 0.6, 0.0, None)[0].shape == x.shape


def test_ve_euler_maruyama_step_is_algorithm_1():
    x, s, z = _rand(0), _rand(1), _rand(2)
    e = 3.0**2 - 2.0**2
    torch.testing.assert_close(ve_euler_maruyama_step(x, s, 3.0, 2.0, z), x + e * s + math.sqrt(e) * z)


def test_cfg_batches_one_call_and_combines():
    m = gaussian_pixel(conditional=True)
    cond, uncond = m.encode_prompt(["a red emoji"]), m.encode_prompt([""])
    x = _rand(0, (2, 3, 8, 8))
    guided = cfg_denoiser(m, cond, uncond, 4.0)
    m.calls = 0
    e = guided(x, 500.0)
    assert m.calls == 1  # (uncond, cond) concatenated into one call
    e_c, e_u = cfg_denoiser(m, cond)(x, 500.0), cfg_denoiser(m, uncond)(x, 500.0)
    torch.testing.assert_close(e, e_u + 4.0 * (e_c - e_u))
    m.calls = 0
    torch.testing.assert_close(cfg_denoiser(m, cond, uncond, 1.0)(x, 500.0), e_c)
    assert m.calls == 1
    plain = gaussian_pixel()
    assert plain.encode_prompt(["x"]) is None
    assert cfg_denoiser(plain, None)(x, 500.0).shape == x.shape


def test_cfg_takes_per_row_times_and_zero_dim_tensors():
    """t may be a (B,) tensor (each row at its own time, one call) or a 0-d tensor (diffusers' timesteps)."""
    m = gaussian_pixel(conditional=True)
    cond, uncond = m.encode_prompt(["a red emoji"]), m.encode_prompt([""])
    x = _rand(0, (3, 3, 8, 8))
    times = [900.0, 500.0, 20.0]
    for fn in (cfg_denoiser(m, cond, uncond, 4.0), cfg_denoiser(m, cond), cfg_denoiser(gaussian_pixel(), None)):
        m.calls = 0
        rows = fn(x, torch.tensor(times))
        assert m.calls <= 1
        each = torch.cat([fn(x[i : i + 1], t) for i, t in enumerate(times)])
        torch.testing.assert_close(rows, each)
        torch.testing.assert_close(fn(x, torch.tensor(500.0)), fn(x, 500.0))


@pytest.mark.parametrize("eta", [1.0, 0.0])
def test_sample_vp_matches_gaussian_distribution(eta):
    """Exact denoiser of N((10, 10), I): 100 ancestral (or DDIM) steps land on the data distribution."""
    m = ToyBundle()
    g = torch.Generator().manual_seed(0)
    x = torch.randn((2000, 2, 1, 1), generator=g)
    out = last(sample_vp(cfg_denoiser(m, None), x, m.schedule, m.schedule.times(100), eta, g))
    mean, var = out.mean(dim=(0, 2, 3)), out.var(dim=(0, 2, 3))
    assert torch.allclose(mean, torch.full((2,), 10.0), atol=0.1), mean
    assert ((var > 0.8) & (var < 1.1)).all(), var  # few-step ancestral DDPM slightly under-disperses


def test_sample_vp_yields_every_step_and_replays_with_given_noise():
    m = gaussian_pixel()
    times = m.schedule.times(20, 0.5)
    x = _rand(0, (1, 3, 8, 8))
    steps = list(sample_vp(cfg_denoiser(m, None), x, m.schedule, times, 1.0, torch.Generator().manual_seed(1)))
    assert [i for i, _, _ in steps] == list(range(len(times) - 1))
    noises = torch.randn((len(times) - 1, 1, 3, 8, 8), generator=torch.Generator().manual_seed(1))
    replay = last(sample_vp(cfg_denoiser(m, None), x, m.schedule, times, 1.0, None, noises=noises))
    torch.testing.assert_close(replay, steps[-1][1])


def test_sample_ve_matches_gaussian_distribution():
    m = GaussianBundle(torch.zeros(2, 1, 1), 0.5, kind="ve")
    g = torch.Generator().manual_seed(0)
    times = m.schedule.times(200)
    x = float(m.schedule.sigma(times[0])) * torch.randn((4000, 2, 1, 1), generator=g)
    out = last(sample_ve(cfg_denoiser(m, None), x, m.schedule, times, g))
    assert out.mean().abs() < 0.05
    assert 0.2 < out.var() < 0.3  # s^2 = 0.25
