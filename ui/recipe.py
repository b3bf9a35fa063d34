"""Recipes: how a result was made, embedded in its PNG (text chunk "recipe") and saved as JSON."""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, is_dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin

from editing.interface import ModelInfo
from ui.state import image_key


@cache
def output_dir() -> Path:
    # Under the system temp folder, which Gradio serves files from; one folder per process.
    return Path(tempfile.mkdtemp(prefix="stroke-studio-"))


def make_recipe(method: str, info: ModelInfo, configs: dict[str, Any], prompts: dict[str, str], guide: np.ndarray) -> dict:
    seed = next((c.seed for c in configs.values() if hasattr(c, "seed")), None)
    return {
        "method": method,
        "model": {"name": info.name, "family": info.family, "resolution": info.resolution},
        "config": {k: asdict(v) if is_dataclass(v) else v for k, v in configs.items()},
        "prompts": prompts,
        "seed": seed,
        "input_sha256_16": image_key(guide),
        "input_size": [int(guide.shape[1]), int(guide.shape[0])],
    }


def save_result(image: np.ndarray, recipe: dict) -> tuple[str, str]:
    """Write <name>.png (recipe in its "recipe" text chunk) and <name>.json; return both paths."""
    text = json.dumps(recipe, indent=2, sort_keys=True)
    name = f"{recipe['method']}-seed{recipe['seed']}-{image_key(image)[:8]}"
    png, js = output_dir() / f"{name}.png", output_dir() / f"{name}.json"
    meta = PngImagePlugin.PngInfo()
    meta.add_text("recipe", text)
    Image.fromarray(image).save(png, pnginfo=meta)
    js.write_text(text + "\n")
    return str(png), str(js)


def read_recipe(png_path: str) -> dict:
    with Image.open(png_path) as im:
        return json.loads(im.text["recipe"])
