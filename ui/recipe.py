"""Recipes of studio results: the engine's recipe format (editing/recipe.py), so that a downloaded
result re-runs from the command line with `python -m editing replay <name>.json`.

A finished run writes, in one folder per process: <name>.png (the recipe in its "recipe" text
chunk), <name>.json, and the inputs it ran on as <name>-<role>.png (the guide, a mask, the photo,
the colour layer), which the recipe names by relative path.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import asdict
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from editing.interface import ModelInfo
from editing.recipe import make_recipe, save_png, write_inputs, write_recipe
from ui.state import image_key


@cache
def output_dir() -> Path:
    # Under the system temp folder, which Gradio serves files from; one folder per process.
    return Path(tempfile.mkdtemp(prefix="stroke-studio-"))


def save_run(
    method: str,
    info: ModelInfo,
    configs: dict[str, Any],
    prompts: dict[str, str],
    inputs: dict[str, np.ndarray],
    output: np.ndarray,
    *,
    masks: tuple[str, ...] = ("mask",),
    mode: str | None = None,
) -> list[str]:
    """Write a finished run (see the module doc); return [png, json, *inputs].

    `method`, the config roles, the prompt roles and the input roles are the command line's
    (`python -m editing <method> --help`); `mode` is the studio's name for what ran when it differs
    ("sdedit-masked", "sdedit-composite"), kept under "studio" where replay ignores it.
    """
    seed = next((c.seed for c in configs.values() if hasattr(c, "seed")), None)
    # Named by the output and everything that made it, so two runs never share (and overwrite) inputs.
    made_of = json.dumps([method, {k: asdict(c) for k, c in configs.items()}, prompts, {k: image_key(v) for k, v in inputs.items()}],
                         sort_keys=True, default=str)  # fmt: skip
    key = hashlib.sha256((image_key(output) + made_of).encode()).hexdigest()[:8]
    stem = output_dir() / f"{mode or method}-seed{seed}-{key}"
    record = write_inputs(stem, inputs, masks)
    png = stem.with_name(stem.name + ".png")
    recipe = make_recipe(method, configs, model=info, inputs=record, prompts=prompts, output=output, output_path=png.name,
                         extra={"studio": {"mode": mode or method}})  # fmt: skip
    save_png(output, png, recipe)
    js = write_recipe(recipe, stem.with_name(stem.name + ".json"))
    return [str(png), str(js), *(str(stem.parent / r["file"]) for r in record.values())]
