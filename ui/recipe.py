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
from ui.state import RunRecord, image_key


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
    studio: dict[str, Any] | None = None,
) -> list[str]:
    """Write a finished run (see the module doc); return [png, json, *inputs].

    `method`, the config roles, the prompt roles and the input roles are the command line's
    (`python -m editing <method> --help`); `mode` is the studio's name for what ran when it differs
    ("sdedit-masked", "sdedit-composite"), kept under "studio" with `studio`'s entries; replay runs
    the method and configs, and reads "studio" only to explain a difference.
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
                         extra={"studio": {"mode": mode or method, **(studio or {})}})  # fmt: skip
    save_png(output, png, recipe)
    js = write_recipe(recipe, stem.with_name(stem.name + ".json"))
    return [str(png), str(js), *(str(stem.parent / r["file"]) for r in record.values())]


def save_record(info: ModelInfo, run: RunRecord, output: np.ndarray) -> list[str]:
    """save_run for a RunRecord (a result kept with what made it, e.g. a sweep's)."""
    inputs = {k: v for k, v in run.inputs.items() if v is not None}
    return save_run(run.method, info, run.configs, run.prompts, inputs, output, mode=run.mode, studio=run.studio)
