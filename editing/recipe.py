"""Recipes: a JSON record of one run (method, every parameter, seed, inputs, model, versions) that
`python -m editing replay recipe.json` re-runs to the same pixels on the same device."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import io
import json
import os
import platform
import sys
import uuid
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin, UnidentifiedImageError

from editing.interface import ColorEditConfig, InversionConfig, ModelInfo

# 2: ColorEditConfig.strength is the share pushed in over all pulled steps (it was the per-step pull).
# 3: input and output records name their file under "file" (it was "path", which Gradio's client
#    takes for a file to download when a recipe travels in an API answer).
RECIPE_VERSION = 3


def pixel_sha256(image: np.ndarray) -> str:
    """Hash of an image's pixels (shape + bytes), independent of how the PNG was encoded."""
    h = hashlib.sha256(str(image.shape).encode())
    h.update(np.ascontiguousarray(image).tobytes())
    return h.hexdigest()


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("stroke-studio", "torch", "diffusers", "transformers", "numpy", "peft"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def config_entries(configs: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A run's configs as a recipe records them: role -> {"class", "values"}."""
    return {role: {"class": type(c).__name__, "values": dataclasses.asdict(c)} for role, c in configs.items()}


def batch_record(rows: list[dict[str, Any]], index: int, etas: bool = False) -> dict[str, Any]:
    """A result made in a batch (a sweep) records the whole batch: every row's configs in order and
    its own row, so that replay can re-run the same batch and match it to the bit (a batch of another
    size may round differently). `etas`: a text edit's batch of one inversion per eta."""
    record: dict[str, Any] = {"index": index, "size": len(rows), "configs": [config_entries(r) for r in rows]}
    if etas:
        record["etas"] = True
    return record


def make_recipe(
    method: str,
    configs: dict[str, Any],
    *,
    model: ModelInfo,
    inputs: dict[str, dict[str, str]],
    prompts: dict[str, str],
    output: np.ndarray | None = None,
    output_path: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything needed to re-run `method`: `configs` maps a role ("sdedit", "inversion", "edit")
    to its config dataclass; `inputs` maps a role (guide, mask, image, colour) to {"file", "sha256"}
    of the pixels that were used (a relative path is relative to the recipe's folder); `model` is the
    loaded model's ModelInfo (`bundle.info()`; what the torch-free studio holds). `extra` adds fields
    that replay ignores (the studio records its mode there)."""
    recipe: dict[str, Any] = {
        "recipe_version": RECIPE_VERSION,
        "method": method,
        "configs": config_entries(configs),
        "prompts": prompts,
        "inputs": inputs,
        "model": {"id": model.name, "family": model.family, "weights_hash": model.weights_hash,
                  **({"config_hash": model.config_hash} if model.config_hash else {})},
        "device": model.device,
        "dtype": model.dtype,
        "versions": library_versions(),
    }
    torch = sys.modules.get("torch")  # loaded wherever a model ran; this module itself stays torch-free
    if torch is not None and str(model.device).startswith("cpu"):
        recipe["threads"] = torch.get_num_threads()  # CPU sums round by how the work is split; replay uses as many
    if output is not None:
        recipe["output"] = {"file": output_path, "sha256": pixel_sha256(output), "shape": list(output.shape)}
    return {**recipe, **(extra or {})}


def save_png(image: np.ndarray, path: str | Path, recipe: dict[str, Any] | None = None) -> Path:
    """Write a PNG, with the recipe (when given) in its "recipe" text chunk."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    info = PngImagePlugin.PngInfo()
    if recipe is not None:
        info.add_text("recipe", json.dumps(recipe))
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", pnginfo=info)
    return write_atomic(path, buf.getvalue())


def write_atomic(path: str | Path, data: bytes) -> Path:
    """Write `data` under a staging name beside `path`, then rename it into place: a reader (a
    download of the same result by another visitor, a replay) sees the old file or the new one,
    never a truncated one, and a failed write leaves nothing behind."""
    path = Path(path)
    staging = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")  # open() rather than mkstemp: the usual permissions
    try:
        with open(staging, "xb") as f:
            f.write(data)
        os.replace(staging, path)
    except OSError as e:  # named by the file asked for, not the staging name nobody chose
        staging.unlink(missing_ok=True)
        raise OSError(e.errno, e.strerror, str(path)) from e
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
    return path


def read_png_recipe(path: str | Path) -> dict[str, Any]:
    """The recipe embedded in a result PNG."""
    try:
        with Image.open(path) as im:
            text = getattr(im, "text", {}).get("recipe")
    except FileNotFoundError:
        raise
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"cannot read '{path}' as a PNG ({exc})") from None
    if text is None:
        raise ValueError(f"'{path}' has no recipe embedded (no 'recipe' text chunk)")
    return json.loads(text)


def write_inputs(stem: str | Path, images: dict[str, np.ndarray], masks: tuple[str, ...] = ()) -> dict[str, dict[str, str]]:
    """Save in-memory inputs beside a result, as `<stem>-<role>.png` (masks white on black), and
    return their recipe record: a path relative to the folder and the pixels' hash. PNG is lossless,
    so that is the hash of what replay reads back (`load_image`; `load_mask` gives the bool mask), and
    a downloaded set replays anywhere."""
    stem = Path(stem)
    record = {}
    for role, arr in images.items():
        pixels = np.asarray(arr, bool) if role in masks else arr
        path = save_png(np.where(pixels, 255, 0).astype(np.uint8) if role in masks else pixels, stem.with_name(f"{stem.name}-{role}.png"))
        record[role] = {"file": path.name, "sha256": pixel_sha256(pixels)}
    return record


def input_path(recipe_file: str | Path, path: str) -> Path:
    """An input's path as recorded in a recipe: absolute, or relative to the recipe's folder."""
    p = Path(path)
    return p if p.is_absolute() else Path(recipe_file).parent / p


def write_recipe(recipe: dict[str, Any], path: str | Path) -> Path:
    return write_atomic(path, (json.dumps(recipe, indent=2, sort_keys=False) + "\n").encode())


def read_recipe(path: str | Path) -> dict[str, Any]:
    """A recipe JSON, or the recipe embedded in a result PNG, in today's terms (see upgrade_recipe)."""
    path = Path(path)
    try:
        recipe = read_png_recipe(path) if path.suffix.lower() == ".png" else json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"no recipe file at '{path}'") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"'{path}' is not a recipe: invalid JSON ({exc.msg} at line {exc.lineno})") from None
    if "config" in recipe and "configs" not in recipe:
        raise ValueError(f"'{path}' was written by an earlier studio, whose recipes record settings but not the inputs, so it "
                         "cannot be replayed; its settings are under 'config'")  # fmt: skip
    for key in ("method", "configs", "model", "inputs"):
        if key not in recipe:
            raise ValueError(f"'{path}' is not a recipe: the field '{key}' is missing")
    version = recipe.get("recipe_version", 1)
    if not isinstance(version, int) or version > RECIPE_VERSION:
        raise ValueError(f"'{path}' has recipe version {version!r}, newer than this Stroke Studio reads (up to "
                         f"{RECIPE_VERSION}): replay it with the version that wrote it")  # fmt: skip
    return upgrade_recipe(recipe)


def upgrade_recipe(recipe: dict[str, Any]) -> dict[str, Any]:
    """An older recipe in today's terms, so that it re-runs the same edit.

    Version 1 -> 2: a colour edit's per-step pull s becomes the total share 1 - (1 - s)^k over the
    k steps it pulls (what `ColorEditConfig.strength` now means).
    Version 2 -> 3: the input and output records' "path" becomes "file".
    """
    version = recipe.get("recipe_version", 1)
    if version >= RECIPE_VERSION:
        return recipe
    recipe = copy.deepcopy(recipe)
    configs = recipe["configs"]
    for entry in configs.values() if version < 2 else ():
        if entry.get("class") != "ColorEditConfig":
            continue
        v = entry["values"]
        n = InversionConfig(**configs["inversion"]["values"]).steps
        k = ColorEditConfig(**v).pulled_steps(n)
        v["strength"] = 1.0 - (1.0 - float(v["strength"])) ** k if k else 0.0
    for rec in [*recipe["inputs"].values(), recipe.get("output") or {}]:
        if "path" in rec:
            rec["file"] = rec.pop("path")
    recipe["recipe_version"] = RECIPE_VERSION
    return recipe


def recipe_path_for(image_path: str | Path) -> Path:
    """The recipe lives beside its image: out.png -> out.json."""
    return Path(image_path).with_suffix(".json")
