"""Faithfulness metrics: SDEdit's L2 on [0, 1] pixels (per-image Euclidean norm), masked L2, SSIM."""

from __future__ import annotations

import math

import numpy as np
import pytest

from editing.metrics import faithfulness, l2, l2_batch, masked_l2, ssim, ssim_batch


def test_l2_is_the_euclidean_norm_on_unit_pixels():
    a, b = np.zeros((4, 4, 3), np.uint8), np.full((4, 4, 3), 255, np.uint8)
    assert l2(a, b) == pytest.approx(math.sqrt(48))
    assert l2(a, a) == 0.0
    c = a.copy()
    c[0, 0, 0] = 51  # one value off by 0.2
    assert l2(a, c) == pytest.approx(0.2)
    mask = np.zeros((4, 4), bool)
    mask[:2] = True
    assert masked_l2(a, b, mask) == pytest.approx(math.sqrt(24))
    assert masked_l2(a, b, np.zeros((4, 4), bool)) == 0.0
    assert l2_batch(a, [a, b]) == pytest.approx([0.0, math.sqrt(48)])


def test_ssim():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (32, 24, 3), dtype=np.uint8)
    noisy = np.clip(a.astype(int) + rng.integers(-40, 41, a.shape), 0, 255).astype(np.uint8)
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-6)
    s_noisy, s_inv = ssim_batch(a, [noisy, 255 - a])
    assert s_inv < s_noisy < 1.0
    assert ssim(a[:5, :5], a[:5, :5]) == pytest.approx(1.0, abs=1e-6)  # small images: smaller window


def test_faithfulness_rows_and_errors():
    a = np.zeros((8, 8, 3), np.uint8)
    b = a.copy()
    b[:4] = 255
    mask = np.zeros((8, 8), bool)
    mask[:4] = True
    (row,) = faithfulness(a, [b], mask)
    assert set(row) == {"l2", "ssim", "masked_l2", "kept_l2"}
    assert row["kept_l2"] == 0.0 and row["masked_l2"] == pytest.approx(row["l2"])
    with pytest.raises(ValueError, match="shape"):
        l2(a, np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        l2(a, a.astype(np.float32))
