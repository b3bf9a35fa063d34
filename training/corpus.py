"""The offline emoji corpus: registry packages -> one .npz of small RGB images with captions.

    python -m training.corpus --out .cache/corpus --size 32

Sources (fetched with the ordinary clients into `<out>/pkgs`, nothing else is reachable):

| source   | package                              | licence     | style phrase        |
| -------- | ------------------------------------ | ----------- | ------------------- |
| google   | npm emoji-datasource-google (64 px)  | Apache-2.0  | "google style"      |
| twemoji  | npm @twemoji/svg                     | CC-BY-4.0   | "twemoji style"     |
| fluent   | npm fluentui-emoji, icons/flat       | MIT         | "fluent flat style" |
| fluent3d | npm fluentui-emoji, icons/modern     | MIT         | "fluent 3d style"   |
| noto     | Debian fonts-noto-color-emoji        | OFL-1.1     | "noto style"        |

The npm fluentui-emoji package ships SVGs only ("flat", "modern" gradient-shaded, "high-contrast");
it has no 3D PNGs, so "modern" stands in for the 3D-looking style. The Apple and Facebook sets
(licences) and OpenMoji (share-alike) are left out on purpose.

Every image is composited on white and area-downsampled (cv2.INTER_AREA) to `size`. Captions are
the CLDR name from the `emoji` package plus the style phrase. The held-out split (~3 % of base emoji) is by
emoji: the hash of the emoji with skin tones and variation selectors removed, so a held-out emoji
(and its skin-tone variants) is unseen in every style.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import subprocess
import tarfile
from collections import Counter
from dataclasses import dataclass
from multiprocessing import Pool
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from editing.images import on_white  # the editor's compositing on white: one definition
from training import show_defaults

STYLES = {
    "google": "google style",
    "twemoji": "twemoji style",
    "fluent": "fluent flat style",
    "fluent3d": "fluent 3d style",
    "noto": "noto style",
}
NPM = {"google": "emoji-datasource-google", "twemoji": "@twemoji/svg", "fluent": "fluentui-emoji"}
HELDOUT_PERCENT = 3
SKIN_TONES = {"light", "medium-light", "medium", "medium-dark", "dark"}
# Flipping would change the meaning: direction, text, letters, digits, clocks, flags.
NO_FLIP = re.compile(
    r"\b(left|right|leftwards|rightwards|arrow|flag|keycap|letter|letters|button|clock|o’clock|o'clock|"
    r"[a-z]+-thirty|sign|symbol|mark|"
    r"input|ideograph|japanese|zodiac|[a-z]\b.*button|writing|reverse|fast|play|next|last|track|"
    r"record|eject|shuffle|repeat|clockwise|counterclockwise|tm|copyright|registered|sos|new|free|"
    r"cool|top|soon|on!|end|back|atm|wc|abc|abcd|1234|id|vs|ok|up!|ng)\b",
    re.IGNORECASE,
)
NO_FLIP_CATEGORIES = {"Flags", "Symbols"}


@dataclass(frozen=True)
class Item:
    emoji: str  # the emoji string (fully qualified)
    source: str  # key of STYLES
    path: str  # file to read (png/svg) or "" for noto (rendered from the font)


# --- names, splits, flips -----------------------------------------------------------------------


def cldr_name(char: str) -> str | None:
    import emoji

    data = emoji.EMOJI_DATA.get(char)
    if data is None:
        return None
    return data["en"].strip(":").replace("_", " ")


def caption(char: str, source: str) -> str:
    return f"{cldr_name(char)}, {STYLES[source]}"


def base_emoji(char: str) -> str:
    """The emoji with skin-tone modifiers and variation selectors removed (the split key)."""
    return "".join(c for c in char if not (0x1F3FB <= ord(c) <= 0x1F3FF or c == "\ufe0f"))


def is_heldout(char: str) -> bool:
    h = int(hashlib.sha1(base_emoji(char).encode("utf-8")).hexdigest()[:8], 16)
    return h % 100 < HELDOUT_PERCENT


def flippable(char: str, category: str | None = None) -> bool:
    name = cldr_name(char) or ""
    return category not in NO_FLIP_CATEGORIES and not NO_FLIP.search(name)


def from_codes(stem: str) -> str | None:
    """'1f468-1f3fb-200d-1f33e' -> the emoji string, trying with and without U+FE0F."""
    import emoji

    try:
        char = "".join(chr(int(c, 16)) for c in stem.split("-"))
    except ValueError:
        return None
    if char in emoji.EMOJI_DATA and emoji.EMOJI_DATA[char].get("status", 2) == emoji.STATUS["fully_qualified"]:
        return char
    for cand in (char + "\ufe0f", char.replace("\u200d", "\ufe0f\u200d", 1)):
        if cand in emoji.EMOJI_DATA:
            return cand
    return char if char in emoji.EMOJI_DATA else None


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower().replace("’", "").replace("'", "")).strip("-")


def slug_table() -> dict[str, str]:
    import emoji

    table = {}
    for char, data in emoji.EMOJI_DATA.items():
        if data.get("status") == emoji.STATUS["fully_qualified"]:
            table.setdefault(slug(data["en"].strip(":").replace("_", " ")), char)
    return table


# --- fetching ------------------------------------------------------------------------------------


def fetch(pkgs: Path, sources: set[str] | None = None) -> dict[str, Path]:
    """npm pack / apt-get download into `pkgs` (skipped when already there); returns package roots."""
    sources = set(STYLES) if sources is None else sources
    pkgs.mkdir(parents=True, exist_ok=True)
    roots = {}
    for key, name in NPM.items():
        if key not in sources and not (key == "fluent" and "fluent3d" in sources):
            continue
        root = pkgs / key
        if not (root / "package").exists():
            tgz = subprocess.run(["npm", "pack", name, "--silent"], cwd=pkgs, check=True, capture_output=True, text=True)
            tgz_name = tgz.stdout.strip().splitlines()[-1]
            root.mkdir(exist_ok=True)
            with tarfile.open(pkgs / tgz_name) as tf:
                tf.extractall(root, filter="data")
        roots[key] = root / "package"
    if "noto" not in sources:
        return roots
    noto = pkgs / "noto"
    if not noto.exists():
        debs = list(pkgs.glob("fonts-noto-color-emoji_*.deb"))
        if not debs:
            subprocess.run(["apt-get", "download", "fonts-noto-color-emoji"], cwd=pkgs, check=True)
            debs = list(pkgs.glob("fonts-noto-color-emoji_*.deb"))
        subprocess.run(["dpkg", "-x", str(debs[0]), str(noto)], check=True)
    roots["noto"] = next(noto.rglob("NotoColorEmoji.ttf"))
    return roots


def list_items(roots: dict[str, Path]) -> list[Item]:
    import emoji

    items: list[Item] = []
    if "google" in roots:
        for p in sorted((roots["google"] / "img" / "google" / "64").glob("*.png")):
            char = from_codes(p.stem)
            if char:
                items.append(Item(char, "google", str(p)))
    if "twemoji" in roots:
        for p in sorted(roots["twemoji"].glob("*.svg")):
            char = from_codes(p.stem)
            if char:
                items.append(Item(char, "twemoji", str(p)))
    if "fluent" in roots:
        table = slug_table()
        for style, folder in (("fluent", "flat"), ("fluent3d", "modern")):
            for p in sorted((roots["fluent"] / "icons" / folder).glob("*.svg")):
                char = fluent_char(p.stem, table)
                if char:
                    items.append(Item(char, style, str(p)))
    if "noto" in roots:
        for char, data in emoji.EMOJI_DATA.items():
            # Noto 2.042 covers Emoji 15.0; newer emoji render as tofu sequences.
            if data.get("status") == emoji.STATUS["fully_qualified"] and data.get("E", 99) <= 15:
                items.append(Item(char, "noto", str(roots["noto"])))
    return items


def fluent_char(stem: str, table: dict[str, str]) -> str | None:
    if stem in table:
        return table[stem]
    if stem.endswith("-default") and stem[: -len("-default")] in table:
        return table[stem[: -len("-default")]]
    for tone in sorted(SKIN_TONES, key=len, reverse=True):
        if stem.endswith("-" + tone):
            key = f"{stem[: -len(tone) - 1]}-{tone}-skin-tone"
            return table.get(key)
    return None


# --- rasterising ---------------------------------------------------------------------------------


def to_size(rgb: np.ndarray, size: int) -> np.ndarray:
    if rgb.shape[0] == size and rgb.shape[1] == size:
        return rgb
    interp = cv2.INTER_AREA if rgb.shape[0] > size else cv2.INTER_CUBIC
    return cv2.resize(rgb, (size, size), interpolation=interp)


def pad_square(rgba: np.ndarray, margin: float = 1 / 32) -> np.ndarray:
    """Crop to the alpha bounding box and centre on a transparent square (font glyphs)."""
    ys, xs = np.nonzero(rgba[..., 3])
    if len(ys) == 0:
        return rgba
    crop = rgba[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    h, w = crop.shape[:2]
    side = int(round(max(h, w) * (1 + 2 * margin)))
    out = np.zeros((side, side, 4), np.uint8)
    y0, x0 = (side - h) // 2, (side - w) // 2
    out[y0 : y0 + h, x0 : x0 + w] = crop
    return out


def read_png(path: str) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGBA"))


def read_svg(path: str, px: int) -> np.ndarray:
    """Rasterise with resvg, falling back to cairosvg where resvg refuses the file."""
    try:
        import resvg_py

        png = bytes(resvg_py.svg_to_bytes(svg_path=path, width=px, height=px))
    except Exception:
        import cairosvg

        png = cairosvg.svg2png(url=path, output_width=px, output_height=px)
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))


_FONTS: dict[str, object] = {}


def render_glyph(font_path: str, char: str) -> np.ndarray | None:
    """Noto Color Emoji is a CBDT bitmap font: only size 109 exists. None for tofu/unsupported."""
    from PIL import ImageDraw, ImageFont

    font = _FONTS.get(font_path)
    if font is None:
        font = _FONTS[font_path] = ImageFont.truetype(font_path, size=109)
    left, top, right, bottom = font.getbbox(char)
    w, h = right - left, bottom - top
    if w <= 0 or h <= 0 or w > 1.5 * h:  # several glyphs side by side: an unsupported sequence
        return None
    img = Image.new("RGBA", (w + 8, h + 8), (0, 0, 0, 0))
    ImageDraw.Draw(img).text((4 - left, 4 - top), char, font=font, embedded_color=True)
    rgba = np.asarray(img)
    return pad_square(rgba) if rgba[..., 3].any() else None


def rasterise(item: Item, size: int) -> np.ndarray | None:
    try:
        if item.source == "noto":
            rgba = render_glyph(item.path, item.emoji)
            if rgba is None:
                return None
        elif item.path.endswith(".svg"):
            rgba = read_svg(item.path, max(4 * size, 128))
        else:
            rgba = read_png(item.path)
    except Exception:
        return None
    return to_size(on_white(rgba), size)


def _work(args: tuple[Item, int]) -> np.ndarray | None:
    return rasterise(*args)


# --- the corpus ----------------------------------------------------------------------------------


def build(items: list[Item], size: int, categories: dict[str, str] | None = None, workers: int = 2) -> dict[str, np.ndarray]:
    """Rasterise `items` into arrays: images (N, size, size, 3) uint8, captions, emoji, source, split, flip."""
    categories = categories or {}
    if workers > 1:
        with Pool(workers) as pool:
            images = pool.map(_work, [(it, size) for it in items], chunksize=64)
    else:
        images = [rasterise(it, size) for it in items]
    keep = [i for i, im in enumerate(images) if im is not None]
    kept = [items[i] for i in keep]
    return {
        "images": np.stack([images[i] for i in keep]) if keep else np.zeros((0, size, size, 3), np.uint8),
        "captions": np.array([caption(it.emoji, it.source) for it in kept]),
        "emoji": np.array([it.emoji for it in kept]),
        "source": np.array([it.source for it in kept]),
        "split": np.array(["heldout" if is_heldout(it.emoji) else "train" for it in kept]),
        "flip": np.array([flippable(it.emoji, categories.get(base_emoji(it.emoji))) for it in kept]),
    }


def google_categories(google_root: Path) -> dict[str, str]:
    path = google_root / "emoji.json"
    if not path.exists():
        return {}
    out = {}
    for e in json.loads(path.read_text()):
        char = "".join(chr(int(c, 16)) for c in e["unified"].split("-"))
        out[base_emoji(char)] = e["category"]
    return out


ATTRIBUTION = """# Emoji corpus: sources, licences and attribution

This corpus (and every model trained on it) is built from these packages, fetched with npm and
apt-get. Images were rasterised, composited on white and downsampled; captions are CLDR names from
the `emoji` PyPI package (BSD-3-Clause) plus a style phrase.

| style phrase | package | licence | attribution |
| --- | --- | --- | --- |
| google style | npm `emoji-datasource-google` (iamcal/emoji-data; images from Google's Noto Emoji) | Apache-2.0 | Copyright Google Inc. and the emoji-data authors |
| twemoji style | npm `@twemoji/svg` (jdecked/twemoji) | CC-BY-4.0 | Twemoji graphics by Twitter, Inc. and other contributors, licensed under CC-BY 4.0: https://creativecommons.org/licenses/by/4.0/ (images were resized) |
| fluent flat style, fluent 3d style | npm `fluentui-emoji` (icons/flat, icons/modern; Microsoft Fluent UI Emoji) | MIT | Copyright (c) Microsoft Corporation |
| noto style | Debian `fonts-noto-color-emoji` (NotoColorEmoji.ttf, glyphs rendered) | SIL OFL-1.1 (font); images Apache-2.0 | Copyright Google Inc. |

Left out on purpose: Apple and Facebook emoji sets (licences do not permit reuse) and OpenMoji
(CC-BY-SA, share-alike).
"""


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(".cache/corpus"))
    ap.add_argument("--size", type=int, default=64, help="image side in pixels")
    ap.add_argument("--pkgs", type=Path, default=None, help="where packages are fetched (default <out>/pkgs)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--sources", default=",".join(STYLES), help="comma-separated subset of " + ",".join(STYLES))
    args = show_defaults(ap).parse_args(argv)

    wanted = set(args.sources.split(","))
    if unknown := sorted(wanted - set(STYLES)):  # a typo built an empty corpus and exited 0
        ap.error(f"--sources: unknown {', '.join(map(repr, unknown))}; choose from {','.join(STYLES)}")
    roots = fetch(args.pkgs or args.out / "pkgs", wanted)
    items = [it for it in list_items(roots) if it.source in wanted]
    data = build(items, args.size, google_categories(roots["google"]) if "google" in roots else {}, args.workers)
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"emoji{args.size}.npz"
    np.savez(out, **data)
    (args.out / "ATTRIBUTION.md").write_text(ATTRIBUTION)
    counts = Counter(zip(data["source"].tolist(), data["split"].tolist(), strict=True))
    for src in STYLES:
        print(f"{src:9s} train {counts[(src, 'train')]:6d}  heldout {counts[(src, 'heldout')]:5d}")
    n_emoji = len(set(data["emoji"].tolist()))
    n_held = len({e for e, s in zip(data["emoji"].tolist(), data["split"].tolist(), strict=True) if s == "heldout"})
    print(f"total {len(data['images'])} images, {n_emoji} distinct emoji ({n_held} held out) -> {out}")


if __name__ == "__main__":
    main()
