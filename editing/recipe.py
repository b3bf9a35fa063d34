"""Recipes: a JSON record of one run (method, every parameter, seed, inputs, model, versions) that
`python -m editing replay recipe.json` re-runs to the same pixels on the same device."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from editing.interface import ColorEditConfig, InversionConfig

# 2: ColorEditConfig.strength is the share pushed in over all pulled steps (it was the per-step pull).
RECIPE_VERSION = 2


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


def make_recipe(
    method: str,
    configs: dict[str, Any],
    *,
    model: Any,
    inputs: dict[str, dict[str, str]],
    prompts: dict[str, str],
    output: np.ndarray | None = None,
    output_path: str | None = None,
) -> dict[str, Any]:
    """Everything needed to re-run `method`: `configs` maps a role ("sdedit", "inversion", "edit")
    to its config dataclass; `inputs` maps a role (guide, mask, image, colour) to {"path", "sha256"}
    of the pixels that were used; `model` is a loaded ModelBundle."""
    recipe: dict[str, Any] = {
        "recipe_version": RECIPE_VERSION,
        "method": method,
        "configs": {role: {"class": type(c).__name__, "values": dataclasses.asdict(c)} for role, c in configs.items()},
        "prompts": prompts,
        "inputs": inputs,
        "model": {"id": model.model_id, "family": model.family, "weights_hash": model.weights_hash},
        "device": str(model.device),
        "dtype": str(model.dtype).removeprefix("torch."),
        "versions": library_versions(),
    }
    if output is not None:
        recipe["output"] = {"path": output_path, "sha256": pixel_sha256(output), "shape": list(output.shape)}
    return recipe


def write_recipe(recipe: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.write_text(json.dumps(recipe, indent=2, sort_keys=False) + "\n")
    return path


def read_recipe(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        recipe = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"no recipe file at '{path}'") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"'{path}' is not a recipe: invalid JSON ({exc.msg} at line {exc.lineno})") from None
    for key in ("method", "configs", "model", "inputs"):
        if key not in recipe:
            raise ValueError(f"'{path}' is not a recipe: the field '{key}' is missing")
    return upgrade_recipe(recipe)


def upgrade_recipe(recipe: dict[str, Any]) -> dict[str, Any]:
    """An older recipe in today's terms, so that it re-runs the same edit.

    Version 1 -> 2: a colour edit's per-step pull s becomes the total share 1 - (1 - s)^k over the
    k steps it pulls (what `ColorEditConfig.strength` now means).
    """
    if recipe.get("recipe_version", 1) >= 2:
        return recipe
    recipe = copy.deepcopy(recipe)
    configs = recipe["configs"]
    for entry in configs.values():
        if entry.get("class") != "ColorEditConfig":
            continue
        v = entry["values"]
        n = InversionConfig(**configs["inversion"]["values"]).steps
        k = ColorEditConfig(**v).pulled_steps(n)
        v["strength"] = 1.0 - (1.0 - float(v["strength"])) ** k if k else 0.0
    recipe["recipe_version"] = RECIPE_VERSION
    return recipe


def recipe_path_for(image_path: str | Path) -> Path:
    """The recipe lives beside its image: out.png -> out.json."""
    return Path(image_path).with_suffix(".json")
