"""Batched sweeps: each sample of `sdedit_sweep` equals the single `editing.sdedit` run with its config.

Checked on the exact Gaussian denoiser (every code path: DDPM/DDIM, guidance 0/1/other, seeds,
repeats, masks, the VE fallback) and on tiny real networks (a pixel DDPM and a latent SD model,
where the batch really changes the network's batch size), and the batch's point: fewer model calls.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from editing.interface import SDEditConfig, final
from editing.sdedit import num_steps, sdedit
from editing.sweep import sdedit_sweep
from tests.gaussian import gaussian_pixel


def _guide(size: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)


def _single(model, guide, cfg, mask=None, prompt=""):
    frames = list(sdedit(model, guide, cfg, mask=mask, prompt=prompt))
    return frames[-1]


def _check_equal(model, guide, configs, mask=None, prompt="", atol=1e-5):
    frames = list(sdedit_sweep(model, guide, configs, mask=mask, prompt=prompt))
    last = frames[-1]
    assert last.done and len(last.result) == len(configs)
    for i, cfg in enumerate(configs):
        ref = _single(model, guide, cfg, mask, prompt)
        torch.testing.assert_close(last.info["latents"][i], ref.info["latents"], atol=atol, rtol=1e-4)
        diff = np.abs(last.result[i].astype(int) - ref.result.astype(int)).max()
        assert diff <= 1, f"config {i} ({cfg}) differs by {diff} grey levels"
    return frames


T0S = (0.1, 0.25, 0.4, 0.55, 0.7, 0.9)


def test_gaussian_t0_sweep_matches_single_runs_and_batches_calls():
    model = gaussian_pixel(conditional=True)
    guide = _guide(8)
    configs = [SDEditConfig(t0=t, steps=40, guidance_scale=3.0, seed=7 + i, preview_every=4) for i, t in enumerate(T0S)]
    frames = _check_equal(model, guide, configs, prompt="a red square")
    results = frames[-1].result
    assert len({r.tobytes() for r in results}) == len(configs)  # different t0 -> different results
    # previews: strips of all samples; the final frame's image is the results side by side
    assert frames[0].xt.shape == (8, 8 * len(configs), 3)
    assert frames[-1].image.shape == (8, 8 * len(configs), 3)
    assert [f.step for f in frames] == [4, 8, 12, 16, 20, 24, 28, 32, 36]


def test_sweep_makes_one_model_call_per_iteration():
    model = gaussian_pixel(conditional=True)
    configs = [SDEditConfig(t0=t, steps=40, guidance_scale=3.0) for t in T0S]
    final(sdedit_sweep(model, _guide(8), configs, prompt="x"))
    assert model.calls == max(num_steps(c) for c in configs) == 36
    model.calls = 0
    for c in configs:
        final(sdedit(model, _guide(8), c, prompt="x"))
    assert model.calls == sum(num_steps(c) for c in configs)


def test_gaussian_mixed_samplers_scales_seeds_repeats():
    model = gaussian_pixel(conditional=True)
    configs = [
        SDEditConfig(t0=0.5, steps=20, sampler="ddpm", guidance_scale=0.0, seed=1),
        SDEditConfig(t0=0.5, steps=20, sampler="ddim", guidance_scale=1.0, seed=1),
        SDEditConfig(t0=0.33, steps=30, sampler="ddpm", guidance_scale=5.0, seed=2, repeats=2),
        SDEditConfig(t0=1.0, steps=10, sampler="ddim", guidance_scale=3.0, seed=3),
        SDEditConfig(t0=0.5, steps=20, sampler="ddpm", guidance_scale=3.0, seed=4),
    ]
    _check_equal(model, _guide(8, 1), configs, prompt="a cat")


def test_gaussian_masked_and_unconditional():
    model = gaussian_pixel(conditional=False)
    guide = _guide(16, 2)  # larger than the model: resized in, resized out, pasted outside the mask
    mask = np.zeros((16, 16), bool)
    mask[4:12, 2:9] = True
    configs = [SDEditConfig(t0=t, steps=25, seed=s) for t, s in ((0.3, 0), (0.6, 1), (0.6, 2))]
    frames = _check_equal(model, guide, configs, mask=mask)
    for out in frames[-1].result:
        assert (out[~mask] == guide[~mask]).all()  # outside the mask: the input's pixels exactly


def test_ve_falls_back_to_single_runs():
    model = gaussian_pixel(kind="ve")
    configs = [SDEditConfig(t0=t, steps=10, seed=3) for t in (0.3, 0.6)]
    frames = _check_equal(model, _guide(8, 3), configs)
    assert frames[-1].total == sum(num_steps(c) for c in configs)


def test_empty_sweep_is_an_error():
    with pytest.raises(ValueError, match="at least one"):
        final(sdedit_sweep(gaussian_pixel(), _guide(8), []))


@pytest.mark.parametrize("family", ["pixel-ddpm", "latent-sd"])
def test_tiny_networks_match_single_runs(tiny_models, family):
    model = tiny_models[family]
    torch.manual_seed(0)
    configs = [SDEditConfig(t0=t, steps=8, seed=i, guidance_scale=4.0, sampler="ddpm" if i % 2 else "ddim")
               for i, t in enumerate((0.2, 0.5, 0.75))]
    prompt = "a red apple" if model.conditional else ""
    _check_equal(model, _guide(model.resolution, 4), configs, prompt=prompt, atol=1e-4)


# ----------------------------------------------------------------------------- text-edit sweeps
def _edit_check(model, inv, prompt, configs, atol):
    from editing.inversion import edit
    from editing.sweep import edit_sweep

    frames = list(edit_sweep(model, inv, prompt, configs))
    last = frames[-1]
    assert last.done and len(last.result) == len(configs)
    for i, cfg in enumerate(configs):
        ref = list(edit(model, inv, prompt, cfg))[-1]
        torch.testing.assert_close(last.info["latents"][i], ref.info["latents"], atol=atol, rtol=1e-4)
        assert np.abs(last.result[i].astype(int) - ref.result.astype(int)).max() <= 1
    return frames


def test_edit_sweep_matches_single_edits_in_fewer_calls():
    """T_skip and guidance values of one inversion in one batch: each result is `edit`'s, and the sweep
    makes n - min(T_skip) model calls (one per step) instead of one per step per edit."""
    from editing.interface import EditConfig, InversionConfig
    from editing.inversion import invert
    from editing.sweep import edit_sweep

    m = gaussian_pixel(conditional=True)
    inv = final(invert(m, _guide(8, 2), "a cat", InversionConfig(steps=30)))
    configs = [EditConfig(skip=s, guidance_scale=g, preview_every=4) for s, g in ((0, 5.0), (10, 5.0), (20, 1.0), (10, 9.0))]
    m.calls = 0
    frames = list(edit_sweep(m, inv, "a dog", configs))
    assert m.calls == 30 and frames[-1].step == frames[-1].total == 30
    assert [f.info["active"] for f in frames[:-1]][:3] == [1, 1, 3]  # previews at steps 4, 8, 12: the skip-10 runs joined at 10
    _edit_check(m, inv, "a dog", configs, atol=1e-5)


def test_edit_sweep_on_tiny_networks_and_bad_input(tiny_pixel_text, tiny_latent_sd):
    from editing.interface import EditConfig, InversionConfig
    from editing.inversion import invert
    from editing.sweep import edit_sweep

    for model in (tiny_pixel_text, tiny_latent_sd):
        inv = final(invert(model, _guide(16, 3), "a cat", InversionConfig(steps=8, first_step=2)))
        _edit_check(model, inv, "a dog", [EditConfig(skip=2, guidance_scale=3.0), EditConfig(skip=5, guidance_scale=3.0)], atol=1e-4)
        with pytest.raises(ValueError, match="T_skip=1"):
            edit_sweep(model, inv, "a dog", [EditConfig(skip=3), EditConfig(skip=1)])
    with pytest.raises(ValueError, match="at least one"):
        edit_sweep(tiny_latent_sd, inv, "a dog", [])


def test_an_eta_sweep_shares_its_inversions_model_calls_and_edits_in_one_batch():
    """invert_etas: inversions differing only in eta from one set of model calls (the x_t do not depend
    on eta), each equal to `invert`'s to rounding; edit_sweep then takes one inversion per config."""
    from editing.interface import EditConfig, InversionConfig
    from editing.inversion import invert, invert_etas
    from editing.sweep import edit_sweep

    m = gaussian_pixel(conditional=True)
    image = _guide(8, 5)
    cfgs = [InversionConfig(steps=20, eta=e, seed=3, steps_per_call=4) for e in (0.3, 0.6, 1.0)]
    m.calls = 0
    frames = list(invert_etas(m, image, "a cat", cfgs))
    invs = frames[-1].result
    assert m.calls == 5 and [f.step for f in frames] == [4, 8, 12, 16, 20]  # ceil(20 / 4) calls for all three
    for inv, cfg in zip(invs, cfgs, strict=True):
        ref = final(invert(m, image, "a cat", cfg))
        assert inv.config == cfg
        assert torch.allclose(inv.zs, ref.zs, atol=1e-4) and torch.allclose(inv.xts, ref.xts, atol=1e-5)
    edits = [EditConfig(skip=4, guidance_scale=5.0)] * 3
    _edit_check_each(m, invs, "a dog", edits)
    with pytest.raises(ValueError, match="differ only in eta"):
        invert_etas(m, image, "a cat", [cfgs[0], InversionConfig(steps=20, seed=4)])
    with pytest.raises(ValueError, match="3 inversions for 2 configs"):
        edit_sweep(m, invs, "a dog", edits[:2])
    other = final(invert(m, image, "a cat", InversionConfig(steps=10)))
    with pytest.raises(ValueError, match="one step grid"):
        edit_sweep(m, [invs[0], other], "a dog", edits[:2])


def _edit_check_each(model, invs, prompt, configs):
    from editing.inversion import edit
    from editing.sweep import edit_sweep

    last = list(edit_sweep(model, invs, prompt, configs))[-1]
    for i, (inv, cfg) in enumerate(zip(invs, configs, strict=True)):
        ref = list(edit(model, inv, prompt, cfg))[-1]
        torch.testing.assert_close(last.info["latents"][i], ref.info["latents"], atol=1e-4, rtol=1e-4)
    assert not torch.allclose(last.info["latents"][0], last.info["latents"][-1])  # the two ends' etas edit differently


def test_invert_etas_on_a_tiny_network(tiny_latent_sd):
    from editing.interface import EditConfig, InversionConfig
    from editing.inversion import invert, invert_etas

    cfgs = [InversionConfig(steps=8, eta=e, first_step=2) for e in (0.5, 1.0)]
    invs = final(invert_etas(tiny_latent_sd, _guide(16, 6), "a cat", cfgs))
    for inv, cfg in zip(invs, cfgs, strict=True):
        ref = final(invert(tiny_latent_sd, _guide(16, 6), "a cat", cfg))
        assert torch.isnan(inv.zs[:2]).all()
        torch.testing.assert_close(inv.zs[2:], ref.zs[2:], atol=1e-3, rtol=1e-3)
    _edit_check_each(tiny_latent_sd, invs, "a dog", [EditConfig(skip=2, guidance_scale=3.0), EditConfig(skip=3, guidance_scale=3.0)])
