"""The paint canvas as numpy: gr.ImageEditor's value -> a Guide the engine understands.

The editor (image_mode="RGBA", type="numpy") hands over `{background, layers, composite}`.
The studio gives the editor two layers, in this order:

    layers[0]  "strokes": coloured paint, composited over the background (it is the guide)
    layers[1]  "mask":    where the model may change pixels (any paint, alpha > 0, counts)

Extra layers a user adds are treated as more strokes. Pure numpy + Pillow (and editing.images), no torch.

Gradio's editor is known to disagree with itself about sizes (layers at the canvas size while the
background keeps its own, layers missing or None, no composite), so everything is brought to one
native size here: the background's when there is one, else the composite's, else a layer's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from editing.images import (  # the command line paints a --colour layer the same way, to the bit
    MAX_SIDE,
    max_side_size,
    over,
    squeeze_notice,
)
from editing.images import resize_pil as _resize
from editing.interface import Guide

STROKES, MASK = 0, 1  # layer positions; layout.py names them in LayerOptions in this order


class CanvasError(ValueError):
    """A canvas the studio cannot run on; the message is shown to the user as is."""


@dataclass(frozen=True)
class Canvas:
    """What the user painted, at the editor's native resolution (or downscaled, see notices)."""

    guide: Guide  # image = background + strokes; mask from the mask layer; color_mask = strokes
    background: np.ndarray  # (H, W, 3) uint8, the photo without strokes (colour edit inverts it)
    notices: list[str] = field(default_factory=list)


def _as_rgba(a: Any) -> np.ndarray | None:
    if a is None:
        return None
    a = np.asarray(a)
    if a.ndim == 2:  # grey
        a = np.repeat(a[..., None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (3, 4) or a.size == 0:
        raise CanvasError(f"Unsupported canvas image of shape {a.shape}: use an RGB or RGBA picture.")
    if a.dtype != np.uint8:
        a = np.clip(a, 0, 255).astype(np.uint8)
    if a.shape[2] == 3:
        a = np.concatenate([a, np.full(a.shape[:2] + (1,), 255, np.uint8)], axis=2)
    return a


def flatten_on_white(rgba: np.ndarray) -> np.ndarray:
    return over(np.full(rgba.shape[:2] + (3,), 255, np.uint8), rgba)


def editor_to_canvas(value: dict | None, max_side: int = MAX_SIDE) -> Canvas:
    """ImageEditor value -> Canvas. Raises CanvasError with a user-facing sentence when empty."""
    empty = CanvasError("The canvas is empty: paint some strokes, upload a photo or pick an example first (an upload that "
                        "leaves the canvas blank is a file the browser cannot read as an image: use PNG, JPEG or WebP).")  # fmt: skip
    if not value:
        raise empty
    background = _as_rgba(value.get("background"))
    composite = _as_rgba(value.get("composite"))
    layers = [_as_rgba(x) for x in (value.get("layers") or [])]
    ref = next((a for a in (background, composite, *layers) if a is not None), None)
    if ref is None:
        raise empty
    size = ref.shape[:2]
    notices: list[str] = []
    if any(a is not None and a.shape[:2] != size for a in (background, composite, *layers)):
        notices.append(f"The editor sent layers of different sizes; they were fitted to {size[1]}x{size[0]}.")

    painted = [_resize(x, size, nearest=True) for x in layers if x is not None]
    strokes = [x for i, x in enumerate(painted) if i != MASK]
    mask_layer = painted[MASK] if len(painted) > MASK else None

    if background is not None:
        base = flatten_on_white(_resize(background, size, nearest=False))
    elif composite is not None and not painted:
        base = flatten_on_white(composite)  # only a composite came: it is all we know
    else:
        base = np.full(size + (3,), 255, np.uint8)  # blank canvas: paint on white paper

    image = base
    for layer in strokes:
        image = over(image, layer)
    color_mask = np.zeros(size, bool)
    for layer in strokes:
        color_mask |= layer[..., 3] > 0
    mask = mask_layer[..., 3] > 0 if mask_layer is not None else None

    if not color_mask.any() and (base == 255).all():
        raise empty  # white paper with nothing painted on it (a one-colour photo is a guide: a blue sky, say)
    if mask is not None and not mask.any():
        mask = None  # an untouched mask layer means "edit everywhere"

    if max(size) > max_side:
        new = max_side_size(size, max_side)
        notices.append(f"The image was {size[1]}x{size[0]}; it was downscaled to {new[1]}x{new[0]} (max side {max_side}).")
        image, base = _resize(image, new, nearest=False), _resize(base, new, nearest=False)
        mask = None if mask is None else _resize(mask.astype(np.uint8) * 255, new, nearest=True) > 127
        color_mask = _resize(color_mask.astype(np.uint8) * 255, new, nearest=True) > 127

    if (squeezed := squeeze_notice(image.shape)) is not None:
        notices.append(squeezed)
    guide = Guide(image=image, mask=mask, color_mask=color_mask if color_mask.any() else None)
    return Canvas(guide=guide, background=base, notices=notices)


def image_to_editor_value(image: np.ndarray) -> dict:
    """A picture as the editor's background. No layers are sent: the editor then creates its own
    named ones ("strokes", "mask") from LayerOptions, which it does not do for layers it is given."""
    rgba = _as_rgba(image)
    return {"background": rgba, "layers": [], "composite": rgba.copy()}


def cut_plain_background(patch: np.ndarray, tolerance: int = 24, share: float = 0.9) -> np.ndarray:
    """An opaque patch on a plain background (a JPEG or flat PNG of an object on white, say) -> RGBA
    with that background transparent; any other patch unchanged.

    Plain means that at least `share` of the border pixels lie within `tolerance` (per channel) of
    the border's median colour. The background is then every pixel within that tolerance that is
    connected (4-neighbours) to the border, so the same colour inside the object (a white eye) is
    kept. A patch that already has transparency is the user's cut-out and is left alone, as is a
    photo whose border is not plain, and a picture that would be cut out entirely.
    """
    import cv2

    p = _as_rgba(patch)
    if (p[..., 3] < 255).any():
        return p
    rgb = p[..., :3].astype(np.int16)
    border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
    close = np.abs(rgb - np.median(border, axis=0)).max(axis=-1) <= tolerance
    on_border = np.concatenate([close[0], close[-1], close[:, 0], close[:, -1]])
    if on_border.mean() < share:
        return p
    _, labels = cv2.connectedComponents(close.astype(np.uint8), connectivity=4)
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    background = np.isin(labels, edge[edge > 0])  # label 0: the pixels that are not close
    if background.all():
        return p
    out = p.copy()
    out[background, 3] = 0
    return _soft_edge(out, background, np.median(border, axis=0))


def _soft_edge(rgba: np.ndarray, background: np.ndarray, backdrop: np.ndarray, rim: int = 2) -> np.ndarray:
    """The object's anti-aliased edge, part object and part backdrop, unmixed: within `rim` px of the
    cut background each pixel gets the share of the object's colour it holds as its alpha, and that
    colour (the object's nearby interior) as its colour. Kept opaque and as it was, the edge pasted a
    light outline of the old backdrop onto a dark photo."""
    import cv2

    obj = ~background
    near = cv2.dilate(background.astype(np.uint8), np.ones((2 * rim + 1,) * 2, np.uint8)) > 0
    edge, interior = obj & near, (obj & ~near).astype(np.float32)
    if not edge.any() or not interior.any():
        return rgba
    rgb = rgba[..., :3].astype(np.float32)
    size = (4 * rim + 3,) * 2  # far enough to reach past the rim into the interior
    weight = cv2.blur(interior, size)
    colour = cv2.blur(rgb * interior[..., None], size) / np.maximum(weight, 1e-6)[..., None]  # the interior's colour nearby
    reach = edge & (weight > 0)
    towards = colour[reach] - backdrop
    alpha = ((rgb[reach] - backdrop) * towards).sum(-1) / np.maximum((towards**2).sum(-1), 1.0)  # c = a F + (1 - a) B, for a
    a = np.clip(np.rint(np.clip(alpha, 0.0, 1.0) * 255), 0, 255).astype(np.uint8)
    mixed = np.zeros_like(reach)
    mixed[reach] = a < 255  # all object already: kept as it is
    out = rgba.copy()
    out[mixed, :3] = np.clip(np.rint(colour[mixed]), 0, 255).astype(np.uint8)
    out[mixed, 3] = a[a < 255]
    return out


def paste_patch(
    background: np.ndarray, patch: np.ndarray, cx: float, cy: float, scale: float, cut_background: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Paste `patch` (RGB or RGBA) centred at (cx, cy) in [0, 1] of the background, `scale` of its width;
    with `cut_background`, an opaque patch's plain background is cut out first (`cut_plain_background`).

    Returns the composite image and the patch's footprint (its alpha > 0): SDEdit's compositing
    mask, so the model blends the patch in without touching the rest of the photo.
    """
    bg = background[..., :3]
    h, w = bg.shape[:2]
    p = cut_plain_background(patch) if cut_background else _as_rgba(patch)
    pw = max(1, round(w * scale))
    ph = max(1, round(p.shape[0] * pw / p.shape[1]))
    p = _resize(p, (ph, pw), nearest=False)
    x0, y0 = round(cx * w - pw / 2), round(cy * h - ph / 2)
    # The part of the patch that lands on the canvas.
    sx0, sy0 = max(0, -x0), max(0, -y0)
    dx0, dy0 = max(0, x0), max(0, y0)
    dx1, dy1 = min(w, x0 + pw), min(h, y0 + ph)
    layer = np.zeros((h, w, 4), np.uint8)
    if dx1 > dx0 and dy1 > dy0:
        layer[dy0:dy1, dx0:dx1] = p[sy0 : sy0 + dy1 - dy0, sx0 : sx0 + dx1 - dx0]
    return over(bg, layer), layer[..., 3] > 0
