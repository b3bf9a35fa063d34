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

import numpy as np

from editing.interface import ModelInfo
from editing.recipe import make_recipe, save_png, write_inputs, write_recipe
from ui.retention import Retention
from ui.state import RunRecord, image_key

# Under the system temp folder, which Gradio serves files from: one folder per process inside one
# folder for all, so that a studio's retention (--keep-hours) also clears what earlier runs of the
# studio, since stopped, left there.
RESULTS_ROOT = Path(tempfile.gettempdir()) / "stroke-studio-results"


@cache
def output_dir() -> Path:
    RESULTS_ROOT.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="run-", dir=RESULTS_ROOT))


def save_run(info: ModelInfo, run: RunRecord, output: np.ndarray, *, masks: tuple[str, ...] = ("mask",)) -> list[str]:
    """Write a finished run (see the module doc); return [png, json, *inputs].

    `run.method`, its config roles, prompt roles and input roles are the command line's
    (`python -m editing <method> --help`); inputs that are None (no mask painted) are left out.
    `run.mode` is the studio's name for what ran when it differs ("sdedit-masked", "sdedit-sweep"),
    kept under "studio" with `run.studio`'s entries; replay runs the method and configs, and reads
    "studio" only to explain a difference.
    """
    Retention.prune()  # ui/retention.py: old results and previews go as new ones come
    inputs = {k: v for k, v in run.inputs.items() if v is not None}
    name = run.mode or run.method
    seed = next((c.seed for c in run.configs.values() if hasattr(c, "seed")), None)
    # Named by the output and everything that made it, so two runs never share (and overwrite) inputs.
    made_of = json.dumps([run.method, {k: asdict(c) for k, c in run.configs.items()}, run.prompts,
                          {k: image_key(v) for k, v in inputs.items()}], sort_keys=True, default=str)  # fmt: skip
    key = hashlib.sha256((image_key(output) + made_of).encode()).hexdigest()[:8]
    stem = output_dir() / f"{name}-seed{seed}-{key}"
    stem.parent.mkdir(parents=True, exist_ok=True)  # another studio's retention may have taken it while it was empty
    record = write_inputs(stem, inputs, masks)
    png = stem.with_name(stem.name + ".png")
    recipe = make_recipe(run.method, run.configs, model=info, inputs=record, prompts=run.prompts, output=output, output_path=png.name,
                         extra={"studio": {"mode": name, **run.studio}, **({"batch": run.batch} if run.batch else {})})  # fmt: skip
    save_png(output, png, recipe)
    js = write_recipe(recipe, stem.with_name(stem.name + ".json"))
    return [str(png), str(js), *(str(stem.parent / r["file"]) for r in record.values())]
