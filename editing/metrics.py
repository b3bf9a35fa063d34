"""Faithfulness metrics on uint8 (H, W, 3) images: SDEdit's L2, masked L2 and SSIM.

SDEdit (Meng et al. 2022, Sec. 4.1 and Tables 1-3) measures faithfulness as the L2 distance between
the stroke input (the guide) and the output, with pixels scaled to [0, 1]. We use the per-image
Euclidean norm over all H * W * 3 values,

    l2(guide, image) = || guide / 255 - image / 255 ||_2,

the reading consistent with the magnitudes the paper reports (tens, for 256 x 256 images; a
per-pixel mean or RMS would be below 1). It therefore grows with resolution: compare values at one
resolution only.
`masked_l2` is the same norm over the masked pixels only (the region an edit may change, or its
complement to check that the rest was kept).
"""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics.functional.image import structural_similarity_index_measure

from editing.images import check_mask


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    for name, x in (("guide", a), ("image", b)):
        if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 3 or x.shape[2] != 3:
            raise ValueError(f"{name} must be a uint8 array of shape (H, W, 3)")
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    return a.astype(np.float64) / 255.0, b.astype(np.float64) / 255.0


def l2(guide: np.ndarray, image: np.ndarray) -> float:
    """SDEdit's faithfulness: Euclidean norm of the difference over all pixels in [0, 1]."""
    a, b = _pair(guide, image)
    return float(np.sqrt(((a - b) ** 2).sum()))


def masked_l2(guide: np.ndarray, image: np.ndarray, mask: np.ndarray) -> float:
    """The same norm over the pixels where `mask` (H, W) is set (0 for an empty mask)."""
    a, b = _pair(guide, image)
    m = check_mask(mask, a.shape[:2])
    return float(np.sqrt(((a - b)[m] ** 2).sum()))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM on [0, 1] RGB (torchmetrics: Gaussian window 11, sigma 1.5, the usual setting); images
    smaller than 11 pixels use the largest odd Gaussian window that fits."""
    x, y = _pair(a, b)
    k = min(11, *(s - (1 - s % 2) for s in x.shape[:2]))
    if k < 3:
        raise ValueError(f"SSIM needs images of at least 3 x 3 pixels, got {x.shape[:2]}")
    tx = torch.from_numpy(x).permute(2, 0, 1)[None].float()
    ty = torch.from_numpy(y).permute(2, 0, 1)[None].float()
    # torchmetrics sizes a Gaussian window from sigma as 2 * int(3.5 sigma + 0.5) + 1: sigma 1.5 -> 11
    sigma = (k // 2 - 0.25) / 3.5
    val = structural_similarity_index_measure(tx, ty, data_range=1.0, sigma=sigma)
    return float(val)


def faithfulness(guide: np.ndarray, images: list[np.ndarray], mask: np.ndarray | None = None) -> list[dict[str, float]]:
    """Per image: {"l2", "ssim"} against the guide, plus {"masked_l2", "kept_l2"} (inside / outside
    the mask) when a mask is given."""
    out = []
    for image in images:
        row = {"l2": l2(guide, image), "ssim": ssim(guide, image)}
        if mask is not None:
            m = check_mask(mask, guide.shape[:2])
            row["masked_l2"] = masked_l2(guide, image, m)
            row["kept_l2"] = masked_l2(guide, image, ~m)
        out.append(row)
    return out


def l2_batch(guide: np.ndarray, images: list[np.ndarray]) -> list[float]:
    return [l2(guide, x) for x in images]


def ssim_batch(guide: np.ndarray, images: list[np.ndarray]) -> list[float]:
    return [ssim(guide, x) for x in images]
