"""Image loading, resizing, masks, quantisation and compositing."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from editing import images as im


def _img(seed: int, shape=(8, 8)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG" if img.mode != "CMYK" else "JPEG")
    return buf.getvalue()


def test_rgba_is_composited_on_white(tmp_path):
    rgba = np.zeros((4, 5, 4), np.uint8)
    rgba[..., 2] = 255
    rgba[:, :2, 3] = 255  # opaque blue on the left, transparent on the right
    rgba[:, 2, 3] = 128
    path = tmp_path / "a.png"
    Image.fromarray(rgba, "RGBA").save(path)
    for src in (path, str(path), path.read_bytes(), Image.open(path), rgba):
        out = im.load_image(src)
        assert out.dtype == np.uint8 and out.shape == (4, 5, 3)
        assert (out[:, :2] == [0, 0, 255]).all() and (out[:, 3:] == 255).all()
        assert (out[:, 2] == [127, 127, 255]).all()


@pytest.mark.parametrize("mode", ["L", "LA", "P", "CMYK", "I;16", "1"])
def test_other_modes_become_rgb(mode):
    base = Image.fromarray(_img(0, (6, 7)))
    if mode == "I;16":
        src = Image.fromarray(np.arange(42, dtype=np.uint16).reshape(6, 7) * 1500)
    elif mode == "P":
        src = base.convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    else:
        src = base.convert(mode)
    out = im.load_image(_png(src))
    assert out.dtype == np.uint8 and out.shape == (6, 7, 3)
    if mode == "I;16":
        assert out[0, 0].tolist() == [0, 0, 0] and out[-1, -1, 0] == round(41 * 1500 / 257)


def test_palette_with_transparency_and_arrays():
    p = Image.new("P", (3, 3))
    p.putpalette([255, 0, 0] + [0, 0, 0] * 255)
    p.info["transparency"] = 0
    assert (im.load_image(_png(p)) == 255).all()  # palette index 0 is transparent -> white
    assert im.load_image(np.zeros((2, 3), np.uint8)).shape == (2, 3, 3)
    assert im.load_image(np.ones((2, 3, 3), np.float32))[0, 0].tolist() == [255, 255, 255]
    assert im.load_image(np.full((2, 2, 3), 65535, np.uint16))[0, 0, 0] == 255
    with pytest.raises(ValueError, match="float"):
        im.load_image(np.full((2, 2, 3), 2.0))


def test_corrupt_missing_and_unsupported(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(ValueError, match="cannot read image"):
        im.load_image(bad)
    truncated = tmp_path / "trunc.png"
    truncated.write_bytes(_png(Image.fromarray(_img(0, (32, 32))))[:60])
    with pytest.raises(ValueError, match="cannot read image"):
        im.load_image(truncated)
    with pytest.raises(ValueError, match="no such file"):
        im.load_image(tmp_path / "missing.png")
    with pytest.raises(ValueError, match="shape"):
        im.load_image(np.zeros((2, 2, 5), np.uint8))
    with pytest.raises(ValueError):
        im.load_image(3.0)


def test_a_very_large_picture_is_read_without_alarm_up_to_pillows_limit_and_refused_past_it(tmp_path, monkeypatch):
    import warnings

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # the limits, scaled down: warn past 1 000 px, refuse past 2 000
    big, bomb = tmp_path / "big.png", tmp_path / "bomb.png"
    Image.new("RGB", (40, 40), "red").save(big)
    Image.new("RGB", (50, 50), "red").save(bomb)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's "decompression bomb DOS attack" warning is not passed on
        assert im.load_image(big).shape == (40, 40, 3) and im.load_rgba(big).shape == (40, 40, 4)
    for load in (im.load_image, im.load_rgba):  # one sentence (the command line's exit 2), not Pillow's own error
        with pytest.raises(ValueError, match="more than 0 megapixels, the most read here .*downscale it first"):
            load(bomb)


def test_resize_area_down_cubic_up_and_back():
    checker = np.indices((8, 8)).sum(0) % 2 * 255
    checker = np.repeat(checker[..., None], 3, axis=2).astype(np.uint8)
    small = im.to_model_size(checker, 4)
    assert small.shape == (4, 4, 3) and np.abs(small.astype(int) - 128).max() <= 1  # area averages
    odd = _img(1, (13, 7))
    back = im.from_model_size(im.to_model_size(odd, 16), (13, 7))
    assert back.shape == (13, 7, 3)  # aspect restored
    flat = np.full((5, 9, 3), 77, np.uint8)
    assert (im.from_model_size(im.to_model_size(flat, 32), (5, 9)) == 77).all()


def test_masks():
    m = np.zeros((10, 10), bool)
    m[3:7, 3:7] = True
    r = im.resize_mask(m, (20, 20))
    assert r.dtype == bool and r.sum() == 64
    cov = im.mask_coverage(m, (5, 5))
    assert cov.dtype == np.float32 and cov.max() == 1.0 and 0 < cov[1, 1] < 1
    d = im.dilate_mask(m, 1)
    assert d.sum() > m.sum() and d[m].all()
    wide = np.zeros((20, 20), bool)
    wide[2:18, 2:18] = True
    f = im.feather_mask(wide, 2)
    assert (f[~wide] == 0).all() and f[10, 10] == 1.0 and 0 < f[2, 10] < 1
    assert (im.feather_mask(np.ones((4, 4), bool), 3) == 1).all()


def test_a_thin_mask_is_feathered_over_at_most_half_its_half_width_so_its_edit_shows():
    """A 512 px picture feathers over 16 px: a brush stroke 8 px wide reached a quarter of its edit."""
    for width, full in ((1, 1), (4, 4), (8, 6), (64, 64 - 2 * 15)):
        m = np.zeros((64, 512), bool)
        m[:, 100 : 100 + width] = True
        alpha = im.feather_mask(m, 16)[32, 100 : 100 + width]
        assert (alpha == 1.0).sum() == full, width  # the 1 px edges of an 8 px stroke ramp; a wide mask keeps the 16 px ramp
        assert (im.feather_mask(m, 16)[~m] == 0).all()
    with pytest.raises(ValueError, match="match"):
        im.check_mask(np.zeros((3, 3)), (4, 4))


def test_masks_from_the_python_api_read_as_the_command_line_reads_mask_files(tmp_path):
    """White = selected, whatever form the mask comes in; an opaque alpha channel or JPEG noise
    selects nothing of itself (an opaque RGBA mask once selected the whole picture)."""
    right = np.zeros((16, 16), bool)
    right[:, 5:] = True  # inside a JPEG block, so the JPEG rings across the edge
    grey = right.astype(np.uint8) * 255
    rgba = Image.fromarray(grey).convert("RGBA")
    rgba.save(tmp_path / "mask.png")
    Image.fromarray(grey).save(tmp_path / "mask.jpg", quality=60)
    noisy = np.asarray(Image.open(tmp_path / "mask.jpg"))
    assert (noisy[~right] > 0).any()  # the JPEG did leave noise on the unselected half
    forms = {
        "bool": right, "uint8 0/255": grey, "uint8 0/1": right.astype(np.uint8), "int64 0/1": right.astype(np.int64),
        "float 0/1": right.astype(np.float32), "uint16": right.astype(np.uint16) * 65535, "(H, W, 1)": grey[..., None],
        "opaque RGBA array": np.asarray(rgba), "RGB array": np.asarray(rgba.convert("RGB")), "JPEG array": noisy,
        "PIL": rgba, "path": tmp_path / "mask.png", "str path": str(tmp_path / "mask.jpg"),
        "bytes": (tmp_path / "mask.png").read_bytes(),
    }  # fmt: skip
    for what, mask in forms.items():
        m = im.check_mask(mask, (16, 16))
        assert m.dtype == bool and np.array_equal(m, right), what
    strokes = np.zeros((16, 16, 4), np.uint8)  # white strokes on a transparent layer
    strokes[:, 5:] = 255
    assert np.array_equal(im.check_mask(strokes, (16, 16)), right)
    with pytest.raises(ValueError, match=r"^colour mask: .*\[0, 1\]"):
        im.check_mask(grey.astype(np.float32), (16, 16), "colour mask")
    with pytest.raises(ValueError, match=r"^mask: cannot read image .*no such file"):
        im.check_mask(tmp_path / "none.png", (16, 16))
    with pytest.raises(ValueError, match=r"^mask: unsupported dtype"):
        im.check_mask(np.zeros((16, 16), complex), (16, 16))


def test_quantize_colors():
    img = _img(2, (16, 16))
    q = im.quantize_colors(img, 4)
    assert q.shape == img.shape and len(np.unique(q.reshape(-1, 3), axis=0)) <= 4
    assert np.array_equal(q, im.quantize_colors(img, 4))
    three = np.zeros((6, 6, 3), np.uint8)
    three[:2] = [255, 0, 0]
    three[2:4] = [0, 255, 0]
    assert np.array_equal(im.quantize_colors(three, 3), three)
    assert np.array_equal(im.quantize_colors(three, 8), three)  # k capped at the number of colours
    with pytest.raises(ValueError, match="allowed"):
        im.quantize_colors(img, 0)


def test_stroke_painting_is_flat_and_faithful():
    yy, xx = np.mgrid[0:64, 0:64]
    photo = np.dstack([xx * 4, yy * 4, (xx + yy) * 2]).astype(np.uint8)
    noisy = np.clip(photo.astype(int) + np.random.default_rng(0).integers(-20, 21, photo.shape), 0, 255).astype(np.uint8)
    strokes = im.stroke_painting(noisy, n_colors=5)
    assert strokes.shape == photo.shape and len(np.unique(strokes.reshape(-1, 3), axis=0)) <= 5
    assert np.abs(strokes.astype(int) - photo).mean() < 30  # coarse, but the same picture


def test_composite():
    bg, patch = _img(3), _img(4)
    m = np.zeros((8, 8), bool)
    m[:3] = True
    out = im.composite(bg, patch, m)
    assert np.array_equal(out[m], patch[m]) and np.array_equal(out[~m], bg[~m])
    half = im.composite(np.zeros_like(bg), np.full_like(bg, 200), np.full((8, 8), 0.5))
    assert (half == 100).all()
    with pytest.raises(ValueError, match="same shape"):
        im.composite(bg, _img(0, (4, 4)), m)


def test_a_float_tiff_in_0_255_is_read_as_its_grey_levels(tmp_path):
    from PIL import Image

    from editing.images import load_image

    arr = np.tile(np.linspace(0, 255, 16, dtype=np.float32), (4, 1))
    Image.fromarray(arr, mode="F").save(tmp_path / "f.tif")
    out = load_image(tmp_path / "f.tif")
    np.testing.assert_array_equal(out[0, :, 0], np.round(arr[0]).astype(np.uint8))
    Image.fromarray(arr / 255.0, mode="F").save(tmp_path / "g.tif")  # [0, 1] floats as before
    np.testing.assert_array_equal(load_image(tmp_path / "g.tif"), out)


def _display_p3_profile() -> bytes:
    """Pillow's sRGB profile with Display P3's primaries: a wide-gamut profile, made offline."""
    import struct

    from PIL import ImageCms

    icc = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    primaries = {b"rXYZ": (0.5151, 0.2412, -0.0011), b"gXYZ": (0.2920, 0.6922, 0.0419), b"bXYZ": (0.1571, 0.0666, 0.7841)}
    for i in range(struct.unpack(">I", icc[128:132])[0]):
        sig, offset, _ = struct.unpack(">4sII", icc[132 + 12 * i : 144 + 12 * i])
        if sig in primaries:
            icc[offset + 8 : offset + 20] = b"".join(struct.pack(">i", round(v * 65536)) for v in primaries[sig])
    icc[84:100] = bytes(16)  # no profile ID
    return bytes(icc)


def test_a_wide_gamut_picture_is_read_in_srgb_and_an_srgb_one_bit_for_bit(tmp_path):
    """Results are sRGB PNGs: a Display P3 photo's numbers taken as they were shifted its colours on screen
    (outside a mask too) by up to 53 of 255."""
    from PIL import ImageCms

    rgb = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    rgb[0, 0] = (255, 0, 0)
    p3 = _display_p3_profile()
    Image.fromarray(rgb).save(tmp_path / "p3.png", icc_profile=p3)
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(rgb).save(tmp_path / "srgb.png", icc_profile=srgb)
    expected = np.asarray(ImageCms.profileToProfile(Image.fromarray(rgb), ImageCms.ImageCmsProfile(io.BytesIO(p3)),
                                                    ImageCms.createProfile("sRGB")))  # fmt: skip
    for read in (im.load_image, lambda p: im.load_rgba(p)[..., :3]):
        got = read(tmp_path / "p3.png")
        assert np.array_equal(got, expected) and np.abs(got.astype(int) - rgb).max() > 20  # P3's red is redder than sRGB's
        assert np.array_equal(read(tmp_path / "srgb.png"), rgb)
