"""SDEdit's defining properties on exact Gaussian denoisers, and runs on the tiny random models."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from editing.interface import Frame, Guide, SDEditConfig, final
from editing.metrics import l2
from editing.sdedit import EMPTY_MASK, composite_guide, num_frames, num_steps, sdedit
from tests.gaussian import GaussianBundle, cosine_schedule, gaussian_pixel, pixel_mean


def _img(seed: int, shape=(8, 8)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)


def _cfg(**kw) -> SDEditConfig:
    return SDEditConfig(**{"steps": 20, "preview_every": 4, **kw})


@pytest.fixture(scope="module")
def vp():
    return gaussian_pixel()


@pytest.fixture(scope="module")
def vp_text():
    return gaussian_pixel(conditional=True)


@pytest.fixture(scope="module")
def ve():
    return gaussian_pixel(kind="ve")


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_t0_to_zero_returns_the_guide(vp, sampler):
    guide = _img(0)
    out = final(sdedit(vp, guide, _cfg(t0=1e-4, sampler=sampler)))
    assert out.dtype == np.uint8 and out.shape == guide.shape
    assert np.abs(out.astype(int) - guide).max() <= 1


def test_ve_t0_to_zero_returns_the_guide(ve):
    guide = _img(0)
    out = final(sdedit(ve, guide, _cfg(t0=1e-4)))
    # What is left is the sigma_min = 0.01 noise (1.3 grey levels rms) that Tweedie's step cannot
    # remove under a prior much wider than it.
    diff = np.abs(out.astype(int) - guide)
    assert diff.mean() < 1.5 and diff.max() <= 6


@pytest.mark.parametrize("kind", ["vp", "ve"])
def test_distance_to_guide_grows_with_t0(kind):
    """The realism-faithfulness trade-off (paper Fig. 3): mean L2 to the guide over seeds grows with t0.

    VP uses the cosine schedule, whose abar falls evenly over t0 in [0, 1] (with the linear one the
    guide's signal is all but gone by t0 = 0.6 and the last gaps drown in sampling noise)."""
    if kind == "vp":
        model = GaussianBundle(0.5 * pixel_mean(16), 0.5, schedule=cosine_schedule())
    else:
        model = GaussianBundle(0.5 * pixel_mean(16), 0.5, kind="ve")
    guide = np.full((16, 16, 3), 235, np.uint8)  # far from the data mean (|mu| <= 0.3, s = 0.5)
    means = []
    for t0 in (0.1, 0.3, 0.5, 0.7, 1.0):
        means.append(np.mean([l2(guide, final(sdedit(model, guide, _cfg(t0=t0, seed=s)))) for s in range(6)]))
    assert all(a < b for a, b in zip(means, means[1:], strict=False)), means


def test_neighbouring_t0_give_different_start_times_and_outputs(vp):
    assert vp.schedule.start_time(0.500) != vp.schedule.start_time(0.501)
    a = list(sdedit(vp, _img(1), SDEditConfig(t0=0.500, steps=20)))[-1]
    b = list(sdedit(vp, _img(1), SDEditConfig(t0=0.501, steps=20)))[-1]
    assert not np.array_equal(a.info["latents"].numpy(), b.info["latents"].numpy())


def test_seeds(vp, vp_text, ve):
    for model in (vp, vp_text, ve):
        a = final(sdedit(model, _img(2), _cfg(seed=3), prompt="a red emoji" if model.conditional else ""))
        torch.manual_seed(99)  # randomness comes only from the config's seed, never the global RNG
        b = final(sdedit(model, _img(2), _cfg(seed=3), prompt="a red emoji" if model.conditional else ""))
        c = final(sdedit(model, _img(2), _cfg(seed=4), prompt="a red emoji" if model.conditional else ""))
        assert np.array_equal(a, b)
        assert not np.array_equal(a, c)


@pytest.mark.parametrize(
    "t0,steps,k,repeats", [(0.5, 20, 4, 1), (0.5, 20, 3, 1), (0.3, 10, 1, 2), (1.0, 7, 20, 1), (0.2, 20, 2, 3)]
)
def test_frames_arrive_before_the_result_and_count(vp, t0, steps, k, repeats):
    cfg = SDEditConfig(t0=t0, steps=steps, preview_every=k, repeats=repeats)
    frames = list(sdedit(vp, _img(0), cfg))
    total = num_steps(cfg)
    assert total == -(-round(t0 * steps * 1e6) // 10**6) * repeats  # ceil(t0 * steps) * K
    assert len(frames) == num_frames(cfg) == -(-total // k)
    assert all(isinstance(f, Frame) for f in frames)
    assert [f.done for f in frames] == [False] * (len(frames) - 1) + [True]
    assert [f.step for f in frames[:-1]] == list(range(k, total, k))
    assert all(f.total == total and f.xt.shape == (8, 8, 3) and f.x0.dtype == np.uint8 for f in frames[:-1])
    assert frames[-1].step == total and frames[-1].image is frames[-1].result


def test_masked_pixels_outside_are_the_originals_exactly(vp):
    guide = _img(5, (13, 10))  # odd size: resized to 8 x 8 and back
    mask = np.zeros((13, 10), bool)
    mask[3:9, 2:7] = True
    for seed in range(3):
        out = final(sdedit(vp, guide, _cfg(t0=0.8, seed=seed), mask=mask))
        assert out.shape == guide.shape
        assert np.array_equal(out[~mask], guide[~mask])
        assert not np.array_equal(out[mask], guide[mask])


def test_masked_ve_and_guide_object(ve, vp):
    guide = _img(6)
    mask = np.zeros((8, 8), bool)
    mask[:4] = True
    for model in (vp, ve):
        out = final(sdedit(model, Guide(guide, mask=mask), _cfg(t0=0.7, repeats=2)))
        assert np.array_equal(out[~mask], guide[~mask])
        assert not np.array_equal(out[mask], guide[mask])


def test_empty_mask_then_a_good_request(vp):
    guide = _img(0)
    with pytest.raises(ValueError, match="the mask is empty: paint the region to edit") as e:
        final(sdedit(vp, guide, _cfg(), mask=np.zeros((8, 8), bool)))
    assert str(e.value) == EMPTY_MASK
    with pytest.raises(ValueError, match="must match"):
        sdedit(vp, guide, _cfg(), mask=np.ones((4, 4), bool))
    assert final(sdedit(vp, guide, _cfg())).shape == guide.shape


@pytest.mark.parametrize("bad", [dict(t0=0.0), dict(t0=1.5), dict(guidance_scale=-1.0), dict(steps=0), dict(repeats=11)])
def test_bad_config_names_the_range(bad):
    with pytest.raises(ValueError, match="allowed|integer in"):
        SDEditConfig(**bad)


def test_any_image_kind_and_size(vp):
    rgba = np.zeros((9, 14, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:, :7, 3] = 255  # left half opaque red, right half transparent (white)
    grey = np.random.default_rng(0).integers(0, 256, (5, 31), dtype=np.uint8)
    for image in (rgba, grey, _img(0, (1, 1)), _img(0, (40, 3))):
        out = final(sdedit(vp, image, _cfg(t0=1e-4)))
        assert out.shape == (*image.shape[:2], 3) and out.dtype == np.uint8
    out = final(sdedit(vp, rgba, _cfg(t0=1e-4)))
    assert np.abs(out[:, -1].astype(int) - 255).max() <= 40  # the transparent side came out white-ish


def test_prompt_to_unconditional_model_warns_and_is_ignored(vp):
    with pytest.warns(UserWarning, match="unconditional"):
        a = final(sdedit(vp, _img(0), _cfg(), prompt="a cat"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        b = final(sdedit(vp, _img(0), _cfg()))
    assert np.array_equal(a, b)


def test_text_prompt_and_guidance_change_the_result(vp_text):
    guide = _img(0)
    a = final(sdedit(vp_text, guide, _cfg(t0=0.9), prompt="a red emoji"))
    b = final(sdedit(vp_text, guide, _cfg(t0=0.9), prompt="a blue emoji"))
    c = final(sdedit(vp_text, guide, _cfg(t0=0.9, guidance_scale=7.0), prompt="a red emoji"))
    assert not np.array_equal(a, b) and not np.array_equal(a, c)


def test_composite_guide_then_sdedit(vp):
    background, patch = _img(0, (12, 12)), _img(1, (12, 12))
    mask = np.zeros((12, 12), bool)
    mask[4:8, 4:8] = True
    guide = composite_guide(background, patch, mask)
    assert np.array_equal(guide.image[mask], patch[mask]) and np.array_equal(guide.image[~mask], background[~mask])
    out = final(sdedit(vp, guide, _cfg(t0=0.6)))
    assert np.array_equal(out[~mask], background[~mask])


def test_tiny_models_of_every_family(tiny_models):
    guide = _img(0, (20, 12))
    mask = np.zeros((20, 12), bool)
    mask[5:15, 2:10] = True
    for family, model in tiny_models.items():
        prompt = "a cat" if model.conditional else ""
        cfg = SDEditConfig(t0=0.5, steps=4, preview_every=1, seed=1)
        frames = list(sdedit(model, guide, cfg, mask=mask, prompt=prompt))
        assert len(frames) == num_frames(cfg), family
        out = frames[-1].result
        assert out.shape == guide.shape and np.array_equal(out[~mask], guide[~mask]), family
        again = final(sdedit(model, guide, cfg, mask=mask, prompt=prompt))
        assert np.array_equal(out, again), family


def test_a_wrong_config_or_prompt_is_named_at_the_call(vp):
    """Another method's config failed later on a missing attribute; a prompt of None in the tokenizer."""
    from editing.interface import EditConfig, check_config

    guide = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(TypeError, match="^sdedit: config must be SDEditConfig, got EditConfig$"):
        sdedit(vp, guide, EditConfig())
    with pytest.raises(TypeError, match="^sdedit: config must be SDEditConfig, got NoneType$"):
        sdedit(vp, guide, None)
    assert check_config(EditConfig(), EditConfig, "edit") == EditConfig()
