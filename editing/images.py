"""Image operations on uint8 RGB arrays: loading, resizing, masks, colour quantisation, compositing.

Everything here is OpenCV/Pillow on numpy arrays (no torch). Conventions:

- an *image* is a uint8 array of shape (H, W, 3), RGB;
- a *mask* is a bool array of shape (H, W), True where an edit may change pixels;
- an *alpha* is a float32 array of shape (H, W) in [0, 1].

Non-square inputs: methods resize the image to the model's square resolution (the aspect ratio is
distorted inside the model) and resize the result back to the input's (H, W), so the aspect ratio
is restored on return. This keeps every input pixel in view (centre-cropping would drop content the
user painted) and needs no padding colour that the model would then have to "explain".
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

ImageLike = str | Path | bytes | Image.Image | np.ndarray


def _check_image(image: np.ndarray, name: str = "image") -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"{name} must be a uint8 array of shape (H, W, 3), got {getattr(image, 'dtype', type(image))} {getattr(image, 'shape', '')}"
        )
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"{name} is empty: shape {image.shape}")
    return image


def on_white(rgba: np.ndarray, matte: int = 255) -> np.ndarray:
    """Composite an RGBA uint8 array over a white background (what a painted canvas shows), or
    over another grey level `matte` (masks: black, so that transparent means not selected)."""
    rgb = rgba[..., :3].astype(np.float32)
    a = rgba[..., 3:4].astype(np.float32) / 255.0
    return np.clip(rgb * a + float(matte) * (1.0 - a) + 0.5, 0, 255).astype(np.uint8)


def over(dst_rgb: np.ndarray, src_rgba: np.ndarray) -> np.ndarray:
    """Porter-Duff 'over' of a straight-alpha RGBA layer onto an opaque RGB image (the studio's
    strokes over its picture, and the command line's transparent --colour over its --image)."""
    alpha = src_rgba[..., 3:4].astype(np.float32) / 255.0
    out = src_rgba[..., :3].astype(np.float32) * alpha + dst_rgb.astype(np.float32) * (1.0 - alpha)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _read_file(src: str | Path | bytes, read: Callable[[Image.Image], np.ndarray]) -> np.ndarray:
    """`read` applied to an image file (a path, or its bytes); an unreadable one is a ValueError naming it."""
    what = "the uploaded bytes" if isinstance(src, bytes) else str(src)
    try:
        with warnings.catch_warnings():
            # Pillow warns past MAX_IMAGE_PIXELS (89 MP) of a "decompression bomb DOS attack"; such a photo
            # is read (and downscaled by the methods): up to twice that, where Pillow refuses, below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(src) if isinstance(src, bytes) else src) as img:
                img.load()
                return read(img)
    except FileNotFoundError as e:
        raise ValueError(f"cannot read image {what}: no such file") from e
    except Image.DecompressionBombError as e:
        limit = 2 * (Image.MAX_IMAGE_PIXELS or 0) / 1e6
        raise ValueError(f"cannot read image {what}: it has more than {limit:.0f} megapixels, the most read here "
                         "(Pillow's guard against decompression bombs); downscale it first") from e
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ValueError(f"cannot read image {what}: not a supported or intact image file ({e})") from e


def load_rgba(src: str | Path) -> np.ndarray:
    """An image file as uint8 (H, W, 4), its transparency kept (opaque files get alpha 255)."""
    return _read_file(src, _pil_rgba)


def _in_srgb(img: Image.Image) -> Image.Image:
    """An image with an embedded colour profile other than sRGB (Display P3, Adobe RGB, a CMYK press
    profile), converted to sRGB, as a browser shows it: the results are written as sRGB PNGs, so its
    numbers taken as they are shifted colours by up to 53 of 255. An unreadable profile is passed over."""
    icc = img.info.get("icc_profile")
    if not icc or img.mode not in ("RGB", "RGBA", "CMYK"):
        return img
    from PIL import ImageCms

    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        out = ImageCms.profileToProfile(
            img, profile, ImageCms.createProfile("sRGB"), outputMode="RGBA" if img.mode == "RGBA" else "RGB"
        )
    except (ImageCms.PyCMSError, OSError, ValueError):
        return img
    if out is None:
        return img
    if img.mode != "CMYK" and np.abs(np.asarray(out, np.int16) - np.asarray(img, np.int16)).max(initial=0) <= 1:
        return img  # an sRGB profile (of which there are many): the file's numbers, bit for bit
    return out


def _pil_rgba(img: Image.Image) -> np.ndarray:
    """A PIL image as uint8 RGBA, upright (EXIF orientation applied) and in sRGB (`_in_srgb`); 16-bit and
    float greyscale are scaled to 8 bits as `load_image` scales them (Pillow's own conversion clips them to white)."""
    img = _in_srgb(ImageOps.exif_transpose(img))
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        rgb = _from_pil(img)
        return np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=2)
    return np.ascontiguousarray(np.asarray(img.convert("RGBA")))


def _from_array(arr: np.ndarray, matte: int = 255) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype == np.uint16:
        arr = (arr.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.floating):
        if arr.size and (np.nanmin(arr) < 0.0 or np.nanmax(arr) > 1.0):
            raise ValueError("a float image must hold values in [0, 1]")
        arr = (np.nan_to_num(arr) * 255.0 + 0.5).astype(np.uint8)
    elif arr.dtype != np.uint8:
        raise ValueError(f"unsupported image dtype {arr.dtype}; use uint8, uint16 or float in [0, 1]")
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4) or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"unsupported image shape {arr.shape}; expected (H, W), (H, W, 1|2|3|4)")
    c = arr.shape[2]
    if c == 1:
        return np.repeat(arr, 3, axis=2)
    if c == 2:  # grey + alpha
        return on_white(np.concatenate([np.repeat(arr[..., :1], 3, axis=2), arr[..., 1:]], axis=2), matte)
    if c == 4:
        return on_white(arr, matte)
    return np.ascontiguousarray(arr)


def _from_pil(img: Image.Image, matte: int = 255) -> np.ndarray:
    img = _in_srgb(ImageOps.exif_transpose(img))
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):  # 16/32-bit greyscale (16-bit PNGs open as "I")
        arr = np.asarray(img, dtype=np.float64)
        scale = 257.0 if arr.max(initial=0) > 255 else 1.0
        return _from_array(np.clip(arr / scale + 0.5, 0, 255).astype(np.uint8))
    if mode == "F":  # 32-bit float: values in [0, 1], or in [0, 255] as TIFF writers often store them
        arr = np.nan_to_num(np.asarray(img, dtype=np.float32))
        return _from_array(np.clip(arr / (255.0 if arr.max(initial=0) > 1.0 else 1.0), 0, 1))
    if mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in img.info):
        return on_white(np.asarray(img.convert("RGBA")), matte)
    return np.ascontiguousarray(np.asarray(img.convert("RGB")))


def load_image(src: ImageLike, matte: int = 255) -> np.ndarray:
    """Any image (path, bytes, PIL image or array) -> uint8 (H, W, 3) RGB.

    Transparency is composited on white (on the grey level `matte`); greyscale, palette, CMYK and
    16-bit images are converted; EXIF orientation is applied; an embedded colour profile other than
    sRGB is converted to sRGB. An unreadable or unsupported file
    raises ValueError.
    """
    if isinstance(src, np.ndarray):
        return _from_array(src, matte)
    if isinstance(src, Image.Image):
        return _from_pil(src, matte)
    if isinstance(src, (str, Path, bytes)):
        return _read_file(src, lambda img: _from_pil(img, matte))
    raise ValueError(f"cannot read an image from {type(src).__name__}")


def load_mask(src: ImageLike) -> np.ndarray:
    """A mask image (white = selected) -> (H, W) bool; any image load_image reads will do.
    Transparent pixels are not selected (white strokes on a transparent layer select the strokes)."""
    return load_image(src, matte=0).astype(np.float32).mean(axis=2) > 127.5


def resize_image(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize to (H, W): area interpolation when shrinking, bicubic when enlarging."""
    _check_image(image)
    h, w = int(shape[0]), int(shape[1])
    if (h, w) == image.shape[:2]:
        return image.copy()
    shrink = h * w < image.shape[0] * image.shape[1]
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


MAX_SIDE = 1024  # the studio (and its API) downscale larger pictures, with a notice: the models work at <= 512 px


def max_side_size(size: tuple[int, int], max_side: int = MAX_SIDE) -> tuple[int, int]:
    """(H, W) of a picture of `size` shrunk so that its longer side is `max_side` (the same size if it is not larger)."""
    h, w = int(size[0]), int(size[1])
    if max(h, w) <= max_side:
        return h, w
    s = max_side / max(h, w)
    return max(1, round(h * s)), max(1, round(w * s))


def resize_pil(a: np.ndarray, size: tuple[int, int], *, nearest: bool) -> np.ndarray:
    """Resize (H, W, C) uint8 to size=(H, W) as the studio's canvas does: area-like (BOX) when
    shrinking a picture, bilinear when enlarging one, nearest for paint alpha and masks."""
    if a.shape[:2] == tuple(size):
        return a
    if nearest:
        resample = Image.Resampling.NEAREST
    elif a.shape[0] > size[0]:
        resample = Image.Resampling.BOX  # area averaging when shrinking
    else:
        resample = Image.Resampling.BILINEAR  # BOX would be blocky when enlarging
    return np.asarray(Image.fromarray(a).resize((size[1], size[0]), resample))


def studio_downscale(image: np.ndarray, max_side: int = MAX_SIDE) -> np.ndarray | None:
    """A picture as the studio and its API run it when its longer side exceeds `max_side`, else None:
    what `replay --input` compares a caller's original file with."""
    new = max_side_size(image.shape[:2], max_side)
    return None if new == tuple(image.shape[:2]) else resize_pil(image, new, nearest=False)


def to_model_size(image: np.ndarray, size: int) -> np.ndarray:
    """uint8 (H, W, 3) -> (size, size, 3): the model's square resolution (aspect not kept, see module doc)."""
    return resize_image(image, (size, size))


SQUARE_ENOUGH = 1.25  # wider (or taller) pictures get `squeeze_notice`: the models work on a square


def squeeze_notice(shape: tuple[int, ...]) -> str | None:
    """What `to_model_size` does to a picture of (H, W, ...) far from square, said to the user (the studio's
    status, the command line's warning); None for a squarish one."""
    h, w = shape[:2]
    if max(h, w) <= SQUARE_ENOUGH * min(h, w):
        return None
    return (f"The picture is {w}x{h}, not square: the model works on a square, so it is squeezed into one and the result "
            "stretched back, which distorts shapes; crop it to a square for the best result.")  # fmt: skip


def from_model_size(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The model's square output back to the input's (H, W): the aspect ratio is restored."""
    return resize_image(image, shape)


def check_mask(mask: ImageLike, shape: tuple[int, int], name: str = "mask") -> np.ndarray:
    """A mask for an image of `shape`, as (H, W) bool, read as the command line reads a mask file:
    white = selected. A bool array is taken as it is. A numeric array is selected above half of its
    white: 0/1 masks (any dtype) and float masks in [0, 1] at 0.5, uint8 at 127.5, uint16 at half
    of 65535. RGB(A) arrays, PIL images, paths and bytes go by their brightness (load_mask), and
    their transparent pixels are not selected, so JPEG noise and an opaque alpha channel select
    nothing of themselves."""
    try:
        m = load_mask(mask) if isinstance(mask, (str, Path, bytes, Image.Image)) else _array_mask(np.asarray(mask))
    except ValueError as e:
        raise ValueError(f"{name}: {e}") from None
    if m.shape != tuple(shape[:2]):
        raise ValueError(f"{name} has shape {m.shape}; it must match the image's (H, W) = {tuple(shape[:2])}")
    return m


def _array_mask(m: np.ndarray) -> np.ndarray:
    """check_mask's arrays: bool as it is, 0/1 integers as they are, the rest by brightness (load_mask)."""
    if m.ndim == 3 and m.shape[2] == 1:
        m = m[..., 0]
    if m.dtype == np.bool_:
        return m
    if m.dtype.kind not in "uif":
        raise ValueError(f"unsupported dtype {m.dtype}; use bool, an integer type or float in [0, 1]")
    if m.dtype.kind in "ui" and m.size and m.min() >= 0 and m.max() <= 1:
        return m > 0  # a 0/1 mask
    if m.dtype.kind in "ui" and m.dtype not in (np.uint8, np.uint16):
        if m.size and (m.min() < 0 or m.max() > 255):
            raise ValueError(f"{m.dtype} values must lie in [0, 255] (white = 255)")
        m = m.astype(np.uint8)
    return load_mask(m) if m.ndim in (2, 3) else m


def resize_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize a bool mask with nearest-neighbour sampling (then threshold): stays binary."""
    m = np.asarray(mask).astype(np.uint8) * 255
    out = cv2.resize(m, (int(shape[1]), int(shape[0])), interpolation=cv2.INTER_NEAREST)
    return out > 127


def mask_coverage(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Fraction of each target cell covered by the mask (area interpolation), float32 (h, w) in [0, 1].

    Used to bring a pixel mask into model space (e.g. 8x smaller latents): a cell touched by the
    mask has coverage > 0.
    """
    m = np.asarray(mask).astype(np.float32)
    h, w = int(shape[0]), int(shape[1])
    if m.shape == (h, w):
        return m
    interp = cv2.INTER_AREA if h * w < m.size else cv2.INTER_LINEAR
    return np.clip(cv2.resize(m, (w, h), interpolation=interp), 0.0, 1.0)


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def dilate_mask(mask: np.ndarray, radius: int) -> np.ndarray:
    """Grow a bool mask by `radius` pixels (a disk structuring element)."""
    if radius <= 0:
        return np.asarray(mask).astype(bool)
    return cv2.dilate(np.asarray(mask).astype(np.uint8), _disk(int(radius))) > 0


def feather_mask(mask: np.ndarray, radius: int) -> np.ndarray:
    """Soft alpha that is exactly 0 outside the mask and ramps to 1 within `radius` pixels inside it.

    alpha = clip(d / r, 0, 1), d the Euclidean distance to the nearest unmasked pixel. Pixels outside
    the mask therefore keep the original exactly when this alpha composites an edit. r is `radius`,
    but at most half the half-width of each connected part of the mask (and at least 1): a brush
    stroke narrower than twice `radius` never reached full strength (a 4 px stroke in a 512 px picture
    kept 1/8 of its edit), and now does over most of its width.
    """
    m = np.asarray(mask).astype(bool)
    if radius <= 0 or not m.any():
        return m.astype(np.float32)
    if m.all():
        return np.ones(m.shape, np.float32)
    d = cv2.distanceTransform(m.astype(np.uint8), cv2.DIST_L2, 5)
    n, labels = cv2.connectedComponents(m.astype(np.uint8), connectivity=8)
    half_width = np.zeros(n, np.float32)  # each part's largest distance to its edge
    np.maximum.at(half_width, labels[m], d[m])
    r = np.minimum(float(radius), np.maximum(1.0, half_width / 2))[labels]
    return np.clip(d / r, 0.0, 1.0).astype(np.float32) * m


def quantize_colors(image: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Reduce an image to `n` flat colours by k-means (cv2.kmeans): the SDEdit paper's stroke simulator.

    The paper builds its stroke-painting inputs from real images by median-filtering and
    colour-quantising them; this is the quantisation step (blur first with `cv2.medianBlur` for the
    full simulator). Deterministic for a given seed.
    """
    _check_image(image)
    if not 1 <= int(n) <= 256:
        raise ValueError(f"n={n!r} is out of range; allowed: [1, 256]")
    pixels = image.reshape(-1, 3).astype(np.float32)
    k = min(int(n), len(np.unique(pixels, axis=0)))
    cv2.setRNGSeed(int(seed))
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5)
    _, labels, centers = cv2.kmeans(pixels, k, None, criteria, 3, cv2.KMEANS_PP_CENTERS)
    centers = np.clip(centers + 0.5, 0, 255).astype(np.uint8)
    return centers[labels.ravel()].reshape(image.shape)


def stroke_painting(image: np.ndarray, n_colors: int = 6, seed: int = 0) -> np.ndarray:
    """Turn a photo into a stroke-painting-like guide: median filter, then `quantize_colors`.

    The SDEdit paper simulates its stroke inputs from real images by smoothing and colour
    quantisation; the median window here (about 1/24 of the shorter side, odd, at least 3) and the
    colour count are our choices.
    """
    _check_image(image)
    k = max(3, (min(image.shape[:2]) // 24) | 1)
    return quantize_colors(cv2.medianBlur(image, k), n_colors, seed)


def composite(background: np.ndarray, patch: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Paste `patch` onto `background` where `mask` is set (bool) or blend by it (float alpha in [0, 1]).

    Both images are uint8 (H, W, 3) of the same size; this builds SDEdit's image-compositing guide.
    """
    _check_image(background, "background")
    _check_image(patch, "patch")
    if patch.shape != background.shape:
        raise ValueError(f"patch {patch.shape} and background {background.shape} must have the same shape")
    m = np.asarray(mask)
    if m.shape != background.shape[:2]:
        raise ValueError(f"mask {m.shape} must match the images' (H, W) = {background.shape[:2]}")
    if m.dtype == np.bool_:
        return np.where(m[..., None], patch, background)
    a = np.clip(m.astype(np.float32), 0.0, 1.0)[..., None]
    out = patch.astype(np.float32) * a + background.astype(np.float32) * (1.0 - a)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
