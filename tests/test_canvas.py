"""ui/canvas.py: the ImageEditor value -> Guide round trip, including Gradio's sizing quirks."""

from __future__ import annotations

import numpy as np
import pytest

from ui.canvas import CanvasError, editor_to_canvas, image_to_editor_value, over, paste_patch


def rgba(h: int, w: int, colour=(0, 0, 0), alpha: int = 0) -> np.ndarray:
    a = np.zeros((h, w, 4), np.uint8)
    a[..., :3] = colour
    a[..., 3] = alpha
    return a


def photo(h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def value(background=None, layers=(), composite=None) -> dict:
    return {"background": background, "layers": list(layers), "composite": composite}


def test_strokes_composite_over_background_and_mask_layer_becomes_mask():
    bg = rgba(40, 50, (255, 255, 255), 255)
    strokes = rgba(40, 50)
    strokes[5:15, 10:20] = (200, 0, 0, 255)  # opaque red
    strokes[20:25, 30:40] = (0, 0, 200, 128)  # half-transparent blue over white
    mask = rgba(40, 50)
    mask[0:10, 0:5, 3] = 30  # faint paint still counts
    c = editor_to_canvas(value(bg, [strokes, mask], bg))
    g = c.guide
    assert g.image.shape == (40, 50, 3) and g.image.dtype == np.uint8
    assert (g.image[5:15, 10:20] == (200, 0, 0)).all()
    np.testing.assert_array_equal(g.image[22, 35], np.rint(np.array([0, 0, 200]) * 128 / 255 + 255 * (1 - 128 / 255)))
    assert (g.image[30:, :5] == 255).all()
    expected_mask = np.zeros((40, 50), bool)
    expected_mask[0:10, 0:5] = True
    np.testing.assert_array_equal(g.mask, expected_mask)
    np.testing.assert_array_equal(g.color_mask, (strokes[..., 3] > 0))
    assert (c.background == 255).all()
    assert c.notices == []


def test_rgba_background_is_flattened_on_white():
    bg = rgba(8, 8, (10, 20, 30), 0)  # fully transparent: arbitrary RGB underneath
    bg[:4, :, 3] = 255
    c = editor_to_canvas(value(bg, [rgba(8, 8)]))
    assert (c.guide.image[4:] == 255).all()
    assert (c.guide.image[:4] == (10, 20, 30)).all()


def test_photo_without_layers_round_trips_exactly():
    p = photo()
    c = editor_to_canvas(image_to_editor_value(p))
    np.testing.assert_array_equal(c.guide.image, p)
    np.testing.assert_array_equal(c.background, p)
    assert c.guide.mask is None and c.guide.color_mask is None


def test_untouched_mask_layer_means_edit_everywhere():
    p = photo()
    c = editor_to_canvas(value(np.dstack([p, np.full(p.shape[:2], 255, np.uint8)]), [rgba(48, 64), rgba(48, 64)]))
    assert c.guide.mask is None


@pytest.mark.parametrize(
    "v",
    [None, {}, value(), value(None, [rgba(16, 16)]), value(rgba(16, 16, (255, 255, 255), 255), [rgba(16, 16), rgba(16, 16)])],
    ids=["none", "empty-dict", "all-none", "blank-layer-only", "white-sheet-unpainted"],
)
def test_empty_canvas_is_refused_with_a_message(v):
    with pytest.raises(CanvasError, match="canvas is empty"):
        editor_to_canvas(v)


def test_a_one_colour_photo_is_a_guide_not_an_empty_canvas():
    """Only white paper with nothing on it is empty: an uploaded one-colour image (a sky-blue sheet
    for "a clear sky") is what SDEdit starts from."""
    sky = rgba(16, 24, (90, 160, 230), 255)
    c = editor_to_canvas(value(sky, [rgba(16, 24), rgba(16, 24)]))
    assert (c.guide.image == (90, 160, 230)).all() and c.guide.color_mask is None
    with pytest.raises(CanvasError, match="canvas is empty"):
        editor_to_canvas(value(rgba(16, 24, (255, 255, 255), 0), [rgba(16, 24)]))  # transparent: white paper


def test_layers_without_background_are_painted_on_white():
    strokes = rgba(32, 32)
    strokes[10:20, 10:20] = (0, 128, 0, 255)
    c = editor_to_canvas(value(None, [strokes]))
    assert (c.guide.image[10:20, 10:20] == (0, 128, 0)).all()
    assert (c.guide.image[:10] == 255).all()


def test_composite_only_is_used_when_nothing_else_came():
    comp = rgba(12, 20, (1, 2, 3), 255)
    comp[0, 0, :3] = 9
    c = editor_to_canvas(value(None, [], comp))
    assert (c.guide.image[1:] == (1, 2, 3)).all() and (c.guide.image[0, 0] == 9).all()


def test_layers_at_canvas_size_are_fitted_to_a_smaller_background():
    # Gradio's known bug: layers come at the canvas size (800 x 800) while the background keeps its own.
    bg = np.dstack([photo(100, 100), np.full((100, 100), 255, np.uint8)])
    strokes = rgba(800, 800)
    strokes[:400, :400] = (255, 0, 0, 255)  # top-left quarter of the canvas
    c = editor_to_canvas(value(bg, [strokes], rgba(800, 800, (0, 0, 0), 255)))
    assert c.guide.image.shape == (100, 100, 3)
    assert (c.guide.image[:50, :50] == (255, 0, 0)).all()
    np.testing.assert_array_equal(c.guide.image[50:, 50:], bg[50:, 50:, :3])
    assert any("different sizes" in n for n in c.notices)


def test_extra_layers_count_as_strokes_and_none_layers_are_skipped():
    bg = rgba(10, 10, (255, 255, 255), 255)
    s1, mask, s3 = rgba(10, 10), rgba(10, 10), rgba(10, 10)
    s1[0, 0] = (255, 0, 0, 255)
    mask[5, 5, 3] = 255
    s3[9, 9] = (0, 0, 255, 255)
    c = editor_to_canvas(value(bg, [s1, mask, s3]))
    assert tuple(c.guide.image[0, 0]) == (255, 0, 0) and tuple(c.guide.image[9, 9]) == (0, 0, 255)
    assert c.guide.mask.sum() == 1 and c.guide.mask[5, 5]
    c2 = editor_to_canvas({"background": bg, "layers": [s1, None], "composite": None})
    assert c2.guide.mask is None and tuple(c2.guide.image[0, 0]) == (255, 0, 0)


def test_oversized_images_are_downscaled_with_a_notice():
    big = np.zeros((1500, 3000, 3), np.uint8)
    big[:, 1500:] = 255
    mask = rgba(1500, 3000)
    mask[:, :1500, 3] = 255
    c = editor_to_canvas(value(np.dstack([big, np.full((1500, 3000), 255, np.uint8)]), [rgba(1500, 3000), mask]), max_side=1024)
    assert c.guide.image.shape == (512, 1024, 3)
    assert c.guide.mask.shape == (512, 1024) and c.guide.mask[:, :500].all() and not c.guide.mask[:, 524:].any()
    assert (c.guide.image[:, :500] == 0).all() and (c.guide.image[:, 524:] == 255).all()
    assert any("downscaled to 1024x512" in n for n in c.notices)
    assert any("is 1024x512, not square" in n for n in c.notices)  # squeezed into the model's square: said once


def test_only_a_picture_far_from_square_gets_the_squeeze_notice():
    def notes(h, w):
        return [n for n in editor_to_canvas(value(np.dstack([np.zeros((h, w, 3), np.uint8), np.full((h, w), 255, np.uint8)]))).notices
                if "not square" in n]  # fmt: skip

    assert notes(200, 1000) and notes(100, 60) and not notes(64, 64) and not notes(100, 120)


def test_grey_and_float_inputs_are_accepted_and_bad_shapes_refused():
    grey = np.full((6, 7), 80, np.uint8)
    grey[0, 0] = 0
    assert editor_to_canvas(value(grey)).guide.image.shape == (6, 7, 3)
    with pytest.raises(CanvasError, match="Unsupported"):
        editor_to_canvas(value(np.zeros((4, 4, 2), np.uint8)))


def test_over_matches_porter_duff():
    dst = np.full((1, 1, 3), 100, np.uint8)
    src = np.array([[[200, 0, 50, 51]]], np.uint8)  # alpha 0.2
    np.testing.assert_array_equal(over(dst, src)[0, 0], np.rint([120, 80, 90]))


def test_an_opaque_patchs_plain_background_is_cut_out():
    from ui.canvas import cut_plain_background

    yy, xx = np.mgrid[:40, :40]
    disc = (yy - 20) ** 2 + (xx - 20) ** 2 <= 15**2
    eye = (yy - 15) ** 2 + (xx - 15) ** 2 <= 9
    p = np.full((40, 40, 3), 255, np.uint8)
    p[disc] = (220, 30, 30)
    p[eye] = 255  # white inside the object: not connected to the border, so kept
    p[0:2, 0:3] = (250, 246, 252)  # JPEG-like noise in the background
    alpha = cut_plain_background(p)[..., 3]
    assert (alpha[disc] == 255).all() and (alpha[~disc] == 0).all()
    _, footprint = paste_patch(np.zeros((100, 100, 3), np.uint8), p, 0.5, 0.5, 0.4, cut_background=True)
    assert abs(int(footprint.sum()) - int(disc.sum())) <= 0.05 * disc.sum()  # the disc, not the 40 x 40 square
    _, square = paste_patch(np.zeros((100, 100, 3), np.uint8), p, 0.5, 0.5, 0.4)
    assert square.sum() == 40 * 40  # without the option: pasted as it is
    # left alone: a patch with its own transparency, a photo (no plain border), a picture of one flat colour
    cut = rgba(40, 40, (255, 255, 255), 255)
    cut[:5] = 0
    np.testing.assert_array_equal(cut_plain_background(cut), cut)
    photo = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    assert (cut_plain_background(photo)[..., 3] == 255).all()
    assert (cut_plain_background(np.full((8, 8, 3), 255, np.uint8))[..., 3] == 255).all()


def test_a_cut_out_objects_anti_aliased_edge_is_unmixed_from_the_old_backdrop():
    """Kept opaque, the edge's part-white pixels pasted a light outline around the object on a dark photo."""
    from PIL import Image, ImageDraw

    from ui.canvas import cut_plain_background

    big = Image.new("RGB", (320, 320), "white")
    ImageDraw.Draw(big).ellipse((40, 40, 280, 280), fill=(20, 170, 40))
    p = np.asarray(big.resize((80, 80), Image.LANCZOS))  # a green disc, anti-aliased against white
    cut = cut_plain_background(p)
    partial = (cut[..., 3] > 0) & (cut[..., 3] < 255)
    assert partial.sum() > 100  # the edge is see-through in part, as it was drawn
    assert np.abs(cut[partial, :3].astype(int) - (20, 170, 40)).max() <= 12  # in the object's colour, not whitened
    guide, footprint = paste_patch(np.zeros((160, 160, 3), np.uint8), p, 0.5, 0.5, 0.5, cut_background=True)
    assert guide[..., 0][footprint].max() <= 20 + 12  # no pixel of the old white backdrop on the black photo
    assert (cut[~partial & (cut[..., 3] == 255), :3] == p[~partial & (cut[..., 3] == 255)]).all()  # the inside as it was


def test_paste_patch_places_the_patch_and_returns_its_footprint():
    bg = np.zeros((100, 200, 3), np.uint8)
    patch = rgba(10, 20, (255, 255, 255), 255)
    image, mask = paste_patch(bg, patch, cx=0.5, cy=0.5, scale=0.1)  # 20 px wide, centred
    assert mask.sum() == 20 * 10
    ys, xs = np.nonzero(mask)
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (45, 54, 90, 109)
    assert (image[mask] == 255).all() and (image[~mask] == 0).all()
    _, edge = paste_patch(bg, patch, cx=0.0, cy=0.0, scale=0.1)  # clipped at the corner
    assert edge.sum() == 10 * 5
