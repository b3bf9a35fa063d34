"""Command line: `python -m editing sdedit|edit|color|shift|imagic|sweep|replay ...`.

Each run reads image files, shows a progress bar, writes the result PNG (recipe embedded as a PNG
text chunk) and a recipe JSON beside it, which `python -m editing replay recipe.json` (or the PNG)
re-runs; the studio's downloads are the same recipes, with their inputs beside them.
Parameters are generated from the config dataclasses, so defaults live in one place.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
import typing
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from editing import interface as itf
from editing.cache import LRUCache, content_key
from editing.recipe import (
    batch_record,
    input_path,
    make_recipe,
    pixel_sha256,
    read_recipe,
    recipe_path_for,
    save_png,
    write_recipe,
)


# ----------------------------------------------------------------------------- method table
@dataclass(frozen=True)
class MethodSpec:
    name: str
    help: str
    configs: dict[str, type]  # role -> config dataclass
    inputs: tuple[str, ...]  # required image roles
    optional_inputs: tuple[str, ...]
    masks: tuple[str, ...]  # roles read as binary masks (white = selected)
    prompts: dict[str, str]  # prompt role -> help
    run: Callable[..., Iterator[itf.Frame]]
    target_defaults_to_source: bool = False  # --target left out: regenerate under the source prompt
    # --target required on a text model: an empty one edits towards the unconditional text (Imagic says so itself)
    needs_target: bool = False
    # Settings that depend on the model (Imagic's preset per family), resolved before a run so the
    # recipe records what ran; replay runs a recipe's configs as recorded, never re-resolved. Called
    # with the model, the configs and the names of the fields the user gave.
    resolve: Callable[[Any, dict[str, Any], frozenset[str]], dict[str, Any]] | None = None
    # Refuses settings the engine would refuse only after its slow part (a shift past the model's side,
    # refused after the inversion), and a single run (`alone`) that would do nothing the user asked for
    # (a sweep may include such a value as its baseline): called before the model loads (info None) and
    # again once it has, before the run.
    check: Callable[[dict[str, Any], itf.ModelInfo | None, bool], None] | None = None


def _run_sdedit(model, images, prompts, configs):
    from editing.sdedit import sdedit

    return sdedit(model, images["guide"], configs["sdedit"], mask=images.get("mask"), prompt=prompts.get("prompt", ""))


# The last inversion, by content: a sweep over target-side settings (T_skip, guidance, a colour's
# strength, a shift) inverts once, as the studio does within a session. Replay is unchanged: an
# inversion is deterministic, so a reused one is the one a new run would compute.
_INVERSIONS = LRUCache(maxsize=1)


def _until_done(frames: Iterator[itf.Frame]):
    """Stream a method's frames up to its done frame, and return that frame's result."""
    for frame in frames:
        if frame.done:
            return frame.result
        yield frame
    return None


def _inverted(model, images, prompts, cfg: itf.InversionConfig):
    """Stream the inversion's frames (none when this process already inverted the same content) and return it."""
    from editing.inversion import invert

    source = prompts.get("source", "")
    key = content_key("inversion", images["image"], source, model.model_id, model.weights_hash, str(model.dtype),
                      dataclasses.replace(cfg, preview_every=1))  # fmt: skip
    inv = _INVERSIONS.get(key)
    if inv is None:
        inv = yield from _until_done(invert(model, images["image"], source, cfg))
        _INVERSIONS.put(key, inv)
    return inv


def _then(model, images, prompts, configs, regenerate):
    """Stream the inversion's frames, then the regeneration's."""
    inv = yield from _inverted(model, images, prompts, configs["inversion"])
    yield from regenerate(inv)


def _edit_batch(model, images, prompts, runs: list[dict[str, Any]], etas: bool):
    """A seed's text edits as one batch (`editing.sweep.edit_sweep`): of one inversion (T_skip or guidance
    values), or with `etas` of one inversion per eta, all from one set of model calls
    (`editing.inversion.invert_etas`). Streams the frames; the done Frame's result is the list of images."""
    from editing.inversion import invert_etas
    from editing.sweep import edit_sweep

    if etas:
        inv = yield from _until_done(invert_etas(model, images["image"], prompts.get("source", ""), [c["inversion"] for c in runs]))
    else:
        inv = yield from _inverted(model, images, prompts, runs[0]["inversion"])
    yield from edit_sweep(model, inv, prompts.get("target", ""), [c["edit"] for c in runs])


def _run_edit(model, images, prompts, configs):
    from editing.inversion import edit

    return _then(model, images, prompts, configs, lambda inv: edit(model, inv, prompts.get("target", ""), configs["edit"]))


def _run_color(model, images, prompts, configs):
    from editing.inversion import color_edit

    return _then(
        model, images, prompts, configs,
        lambda inv: color_edit(model, inv, images["colour"], images["mask"], prompts.get("target", ""), configs["color"]),
    )


def _run_shift(model, images, prompts, configs):
    from editing.inversion import shift

    return _then(model, images, prompts, configs, lambda inv: shift(model, inv, prompts.get("target", ""), configs["shift"]))


def _check_shift(configs: dict[str, Any], info: itf.ModelInfo | None, alone: bool) -> None:
    dx, dy = configs["shift"].dx, configs["shift"].dy
    if alone and dx == 0 and dy == 0:  # it would invert and redraw the picture unmoved
        raise ValueError("--dx and --dy are both 0: set how far to move the picture (dx to the right, dy down)")
    side = info.model_side if info is not None else 0
    if side and max(abs(dx), abs(dy)) >= side:  # before the inversion, not after it (the engine refuses it too)
        raise ValueError(f"--dx {dx} --dy {dy} is out of range; allowed: [{1 - side}, {side - 1}] each, within "
                         f"{info.name}'s model space of {side}x{side}")  # fmt: skip


def _first_step_at_skip(model, configs: dict[str, Any], given: frozenset[str]) -> dict[str, Any]:
    """A one-shot edit extracts only the noise maps its regeneration uses: InversionConfig.first_step
    = its T_skip (LEdits++ inverts the same way), unless --first-step was given."""
    inv = configs["inversion"]
    regen = next(c for role, c in configs.items() if role != "inversion")
    if "first_step" in given:
        if inv.first_step > regen.skip:  # known before inverting: the edit would refuse it only after the inversion
            raise ValueError(f"--first-step {inv.first_step} is past --skip {regen.skip}: the edit regenerates from step "
                             f"{regen.skip}, so the inversion must keep the noise maps from there (--first-step <= {regen.skip})")  # fmt: skip
        return configs
    return {**configs, "inversion": dataclasses.replace(inv, first_step=min(regen.skip, inv.steps - 1))}


_SOURCE = "prompt describing the input image (text-conditioned models)"
_TARGET = "prompt to regenerate under"
_SAME_TARGET = "prompt to regenerate under (default: the source prompt, so that the picture stays what it is)"
METHODS: dict[str, MethodSpec] = {
    m.name: m
    for m in [
        MethodSpec("sdedit", "SDEdit: stroke painting or photo -> realistic image (optionally inside a mask)",
                   {"sdedit": itf.SDEditConfig}, ("guide",), ("mask",), ("mask",),
                   {"prompt": "optional text prompt (text-conditioned models only)"}, _run_sdedit),
        MethodSpec("edit", "edit-friendly DDPM inversion, then regeneration under a target prompt",
                   {"inversion": itf.InversionConfig, "edit": itf.EditConfig}, ("image",), (), (),
                   {"source": _SOURCE, "target": _TARGET}, _run_edit, resolve=_first_step_at_skip, needs_target=True),
        MethodSpec("color", "colour manipulation through the inverted noise maps",
                   {"inversion": itf.InversionConfig, "color": itf.ColorEditConfig}, ("image", "colour"), ("mask",), ("mask",),
                   {"source": _SOURCE, "target": _SAME_TARGET}, _run_color, target_defaults_to_source=True,
                   resolve=_first_step_at_skip),
        MethodSpec("shift", "image shift: regenerate from shifted noise maps",
                   {"inversion": itf.InversionConfig, "shift": itf.ShiftConfig}, ("image",), (), (),
                   {"source": _SOURCE, "target": _SAME_TARGET}, _run_shift, target_defaults_to_source=True,
                   resolve=_first_step_at_skip, check=_check_shift),
    ]
}


ALIASES = {"color": ["colour"]}  # the British spelling of the command, as its --colour flag (and --color) has both


def register_method(spec: MethodSpec) -> None:
    """Other engine modules (Imagic) add their command here."""
    METHODS[spec.name] = spec


# ----------------------------------------------------------------------------- arguments
def _parse_bool(text: str) -> bool:
    """argparse's type=bool would read any non-empty string, "False" too, as True."""
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _add_config_args(parser: argparse.ArgumentParser, configs: dict[str, type]) -> None:
    seen: set[str] = set()
    for cls in configs.values():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name in seen:
                continue  # shared names (seed, preview_every) set every config that has them
            seen.add(f.name)
            flag = "--" + f.name.replace("_", "-")
            choices = typing.get_args(hints[f.name]) if typing.get_origin(hints[f.name]) is typing.Literal else None
            kind = _parse_bool if isinstance(f.default, bool) else type(f.default)
            key = f"{cls.__name__}.{f.name}"
            scaled = f"{f.default!r} of {itf.InversionConfig.steps} steps, scaled with --steps"
            if key in itf.MODEL_DEFAULTS or key in itf.MODEL_STEP_FRACTIONS:  # filled in by _build_configs once the model is loaded
                own = "own fraction of --steps" if key in itf.MODEL_STEP_FRACTIONS else "own"
                paper = scaled if key in itf.PAPER_STEP_FIELDS else repr(f.default)
                parser.add_argument(flag, dest=f.name, type=kind, default=None,
                                    help=f"default: the model's {own} if it names one, else {paper}")
                continue
            if key in itf.PAPER_STEP_FIELDS:
                parser.add_argument(flag, dest=f.name, type=kind, default=None, help=f"a step index; default {scaled}")
                continue
            # default None, not f.default: _build_configs fills it in, and a flag the user gave is
            # then known as given even when it equals the default (a preset must not override it).
            if kind is _parse_bool:  # the bare flag is true; a value may follow: true/false, yes/no, on/off, 1/0
                parser.add_argument(flag, dest=f.name, type=kind, default=None, nargs="?", const=True, metavar="true|false",
                                    help=f"{_default_help(cls, f)}; the bare flag is true")  # fmt: skip
                continue
            parser.add_argument(flag, dest=f.name, type=kind, default=None, choices=choices, help=_default_help(cls, f))


# Fields whose default alone does not say what they do.
_FIELD_HELP = {
    "InversionConfig.steps_per_call": "inversion steps per model call, run as one batch; 1 = the reference's "
                                      "order (regeneration exact to the bit); default 0 = auto ({auto})",
    "InversionConfig.first_step": "the first step whose noise map is extracted (an edit from T_skip needs "
                                  "first_step <= T_skip); default: the run's T_skip (a sweep's lowest)",
    "ShiftConfig.dx": "columns to move, in model space: pixels for pixel models, latent cells (8 px) for Stable "
                      "Diffusion; a picture larger than the model moves in proportion; positive = right; default 0",
    "ShiftConfig.dy": "rows to move, in model space as --dx; positive = down; default 0",
}


def _default_help(cls: type, f: dataclasses.Field) -> str:
    """"default X", or for a field a preset sets (Imagic's), its value per preset and model family."""
    key = f"{cls.__name__}.{f.name}"
    if f.name == "preview_every":
        return f"steps between preview frames (the studio streams them; --previews DIR writes them); default {f.default!r}"
    if key in _FIELD_HELP:
        return _FIELD_HELP[key].format(auto=itf.AUTO_STEPS_PER_CALL)
    if not hasattr(cls, "preset_values") or f.name == "preset":
        return f"default {f.default!r}"
    parts, seen = [], set()
    for name in ("fast", "paper"):
        per = {fam: cls.preset_values(name, fam).get(f.name, f.default) for fam in itf.IMAGIC_TEXT_FAMILIES}
        seen.update(per.values())
        same = len(set(per.values())) == 1
        parts.append(f"{name}: " + (repr(next(iter(per.values()))) if same else ", ".join(f"{v!r} ({fam})" for fam, v in per.items())))
    if len(seen) == 1:
        return f"default {f.default!r}"
    return f"default: the --preset's value for the model's family ({'; '.join(parts)})"


def _build_configs(args: argparse.Namespace | dict, configs: dict[str, type], info: itf.ModelInfo | None = None) -> dict[str, Any]:
    """The configs from the parsed flags. A field not given (None) takes the model's own default
    (`itf.MODEL_DEFAULTS`, with `info`; a text edit's T_skip in the inversion's steps), else the
    dataclass default; built once before the model loads (bad values fail fast), then again with its info."""
    values = vars(args) if isinstance(args, argparse.Namespace) else args
    out = {}
    for role, cls in configs.items():
        steps = next((c.steps for c in out.values() if isinstance(c, itf.InversionConfig)), None)
        try:
            out[role] = itf.config_for(info, cls, steps, **{f.name: values.get(f.name) for f in dataclasses.fields(cls)})
        except ValueError as e:
            raise ValueError(_as_flags(str(e), configs)) from None
    return out


def _as_flags(message: str, configs: dict[str, type]) -> str:
    """A config's message in the command line's words: `guidance_scale=-1.0 is out of range` reads
    `--guidance-scale -1.0 is out of range` (the field names are the API's; a CLI user typed flags)."""
    names = sorted({f.name for cls in configs.values() for f in dataclasses.fields(cls)}, key=len, reverse=True)
    pattern = re.compile(rf"(?<![\w.-])({'|'.join(names)})(=| must\b)")
    return pattern.sub(lambda m: "--" + m[1].replace("_", "-") + (" " if m[2] == "=" else m[2]), message)


def _threads(text: str) -> int:
    """--threads: a whole number of at least 1 (0 was silently torch's default)."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def _add_model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="emoji", help="preset name (emoji, sd15, sd21-base, church, bedroom, celebahq, "
                        "ncsnpp-celebahq), a local diffusers folder or a hub id (default: emoji)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: cuda if available)")
    parser.add_argument("--dtype", default=None, choices=["float32", "float16", "bfloat16"],
                        help="default: float16 on CUDA, float32 elsewhere")
    parser.add_argument("--threads", type=_threads, default=None,
                        help="CPU threads for torch (default: torch's choice; 1 is fastest on a busy 2-core machine)")


def _input_help(role: str, spec: MethodSpec) -> str:
    what = {"image": "input image file", "colour": "colour image file: the new colours, painted over the image"}.get(role, f"{role} image file")
    return what + (" (white = selected; transparent = not selected)" if role in spec.masks else "")


def _add_method_args(p: argparse.ArgumentParser, spec: MethodSpec) -> None:
    for role in spec.inputs:
        p.add_argument(f"--{role}", *(["--color"] if role == "colour" else []), required=True, help=_input_help(role, spec))
    for role in spec.optional_inputs:
        p.add_argument(f"--{role}", default=None, help="optional " + _input_help(role, spec))
    for role, text in spec.prompts.items():
        p.add_argument(f"--{role}", default=None if role == "target" and spec.target_defaults_to_source else "", help=text)
    _add_config_args(p, spec.configs)
    _add_model_args(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")


class _Parser(argparse.ArgumentParser):
    """Usage mistakes in one line on stderr (exit 2), as every other error here; --help has the rest."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    import editing.imagic  # noqa: F401  (registers the `imagic` command)

    parser = _Parser(prog="python -m editing", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for spec in METHODS.values():
        p = sub.add_parser(spec.name, help=spec.help, description=spec.help, aliases=ALIASES.get(spec.name, []))
        p.set_defaults(command=spec.name)  # an alias runs as the command's own name
        _add_method_args(p, spec)
        p.add_argument("--out", default=f"outputs/{spec.name}.png",
                       help=f"output PNG; the recipe JSON is written beside it (default outputs/{spec.name}.png)")
        p.add_argument("--previews", default=None, metavar="DIR",
                       help="also write the preview frames the studio streams, every --preview-every steps, as PNGs in "
                            "DIR: <stage>-<step>-xt.png (the noisy sample) and -x0.png (the predicted clean image), at "
                            "the model's resolution")  # fmt: skip

    sw = sub.add_parser("sweep", help="run a method over several values of one parameter and seeds, with metrics")
    sw_sub = sw.add_subparsers(dest="method", required=True)
    for spec in METHODS.values():
        p = sw_sub.add_parser(spec.name, help=f"sweep {spec.name}", aliases=ALIASES.get(spec.name, []))
        p.set_defaults(method=spec.name)
        _add_method_args(p, spec)
        names = sorted({f.name for cls in spec.configs.values() for f in dataclasses.fields(cls)} - {"seed", "preview_every"})
        # T_skip: the studio's and the API's name for skip
        p.add_argument("--param", required=True, choices=names, type=lambda v: "skip" if v == "T_skip" else v,
                       help="the parameter to sweep" + (" (T_skip: skip)" if "skip" in names else ""))  # fmt: skip
        p.add_argument("--values", required=True, help="comma-separated values, e.g. 0.2,0.35,0.5,0.65,0.8,0.95 (negative ones "
                       "too: --values -4,0,4)")
        p.add_argument("--seeds", default=None, help="comma-separated seeds (default: --seed's, else 0)")
        p.add_argument("--out-dir", default="outputs/sweep", help="folder of the results, their recipes and metrics.json "
                       "(default outputs/sweep)")

    rp = sub.add_parser("replay", help="re-run a recipe (its JSON, or a result PNG with the recipe embedded) and check the pixels match")
    rp.add_argument("recipe", help="recipe JSON or result PNG; the inputs it names must be beside it (or at their absolute paths)")
    rp.add_argument("--input", action="append", default=[], metavar="ROLE=PATH",
                    help="an input from elsewhere, e.g. --input guide=cat.png (an API result's recipe names files the "
                         "API did not return); its pixels must be the recipe's; repeat for more inputs")
    rp.add_argument("--threads", type=_threads, default=None, help="torch CPU threads (default: as many as the recipe "
                    "was made with, where it says: a CPU's sums round by how they are split across threads)")
    rp.add_argument("--out", default=None, help="output PNG (default: beside the recipe, with -replay)")
    rp.add_argument("--device", default=None, help="cpu, cuda, ... (default: the device the recipe was made on)")
    rp.add_argument("--quiet", action="store_true", help="no progress bar")
    rp.add_argument("--alone", action="store_true", help="a result made in a sweep's batch: replay it by itself, not its whole "
                    "batch (faster; a batch of another size may round differently in the last bits)")
    return parser


# ----------------------------------------------------------------------------- running
def _read_inputs(spec: MethodSpec, paths: dict[str, str | None]) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
    """The run's images by role, and their record (file, pixel hash). A --colour PNG that is
    transparent where nothing changes is the paint as the studio's strokes layer holds it: it is laid
    over the --image, and without a --mask its painted pixels are the mask (not recorded as a file:
    replay derives it again)."""
    from editing.images import load_image, load_mask, squeeze_notice

    images, record = {}, {}
    first = None  # the first input given: every other one must have its size
    for role in spec.inputs + spec.optional_inputs:
        path = paths.get(role)
        if path is None:
            continue
        if role == "colour":
            arr, painted = _colour_layer(path, images["image"])
            if painted is not None and paths.get("mask") is None:
                images["mask"] = painted
        else:
            arr = load_mask(path) if role in spec.masks else load_image(path)
            if first is not None:
                _same_size(role, arr.shape, first, images[first].shape)
        first = first or role
        images[role] = arr
        record[role] = {"file": str(Path(path).resolve()), "sha256": pixel_sha256(arr)}
    if "colour" in images and "mask" not in images:
        raise ValueError("give --mask (white where the colour goes), or a --colour PNG that is transparent where nothing "
                         "changes (its painted pixels are then the mask)")  # fmt: skip
    if "colour" in images and not images["mask"].any():
        raise ValueError("the colour mask is empty: paint the region to recolour (white in --mask, or paint in a transparent --colour)")
    if first is not None and (squeezed := squeeze_notice(images[first].shape)) is not None:
        warnings.warn(squeezed, stacklevel=1)  # as the studio says it
    return images, record


def _same_size(role: str, shape: tuple[int, ...], first: str, first_shape: tuple[int, ...]) -> None:
    """Every input has the first one's size: refused as it is read, not by the engine once the model has
    loaded (or inverted)."""
    if shape[:2] != first_shape[:2]:
        (h, w), (fh, fw) = shape[:2], first_shape[:2]
        raise ValueError(f"the --{role} is {w}x{h} and the --{first} {fw}x{fh}: give them at the same size")


def _colour_layer(path: str, image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """--colour as given, of the --image's size: (the colour image, the painted mask if it has
    transparency, else None)."""
    from editing.images import load_image, load_rgba, over

    rgba = load_rgba(path)
    _same_size("colour", rgba.shape, "image", image.shape)
    if (rgba[..., 3] == 255).all():
        return load_image(path), None
    return over(image, rgba), rgba[..., 3] > 0


def _drain(frames: Iterator[itf.Frame], quiet: bool, desc: str, previews: Path | None = None) -> np.ndarray:
    """Runs a method's frames to its result with a progress bar per stage; `previews`: a folder the
    frames' preview images are written to as they come."""
    from tqdm import tqdm

    bar = None
    stage = None
    result = None
    try:
        for frame in frames:
            if frame.done:
                result = frame.result
                if bar is not None:  # the last step's frame is the done one: show the stage complete
                    bar.update(bar.total - bar.n)
                break
            if previews is not None:
                _write_previews(previews, frame)
            if quiet:
                continue
            if frame.stage != stage:
                if bar is not None:  # a new stage starts when the previous one has finished
                    bar.update(bar.total - bar.n)
                    bar.close()
                stage = frame.stage
                bar = tqdm(total=frame.total, desc=f"{desc}: {stage}", unit="step", file=sys.stderr)
            bar.update(frame.step - bar.n)
            if frame.loss is not None:
                bar.set_postfix(loss=f"{frame.loss:.4f}")
    finally:
        if bar is not None:
            bar.close()
    if result is None:
        raise RuntimeError(f"{desc} stopped before producing a result")
    return result


def write_result(spec: MethodSpec, model, record, prompts, configs, result: np.ndarray, out: str | Path,
                 batch: dict[str, Any] | None = None) -> Path:  # fmt: skip
    """The result PNG (recipe embedded) and its recipe JSON beside it; returns the JSON's path. `batch`:
    the batch a sweep made it in (`batch_record`), which replay re-runs to match it to the bit."""
    recipe = make_recipe(spec.name, configs, model=model.info(), inputs=record, prompts=prompts, output=result,
                         output_path=str(Path(out).resolve()), extra={"batch": batch} if batch is not None else None)
    png = save_png(result, out, recipe)
    try:
        return write_recipe(recipe, recipe_path_for(out))
    except OSError:
        png.unlink(missing_ok=True)  # no result without its recipe
        raise


def _write_previews(folder: Path, frame: itf.Frame) -> None:
    from PIL import Image

    for kind in ("xt", "x0"):
        image = getattr(frame, kind)
        if image is not None:
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / f"{frame.stage}-{frame.step:04d}-{kind}.png")


def run_to_files(spec: MethodSpec, model, images, record, prompts, configs, out: str | Path, quiet: bool,
                 previews: str | Path | None = None) -> tuple[np.ndarray, Path]:  # fmt: skip
    result = _drain(spec.run(model, images, prompts, configs), quiet, spec.name, None if previews is None else Path(previews))
    return result, write_result(spec, model, record, prompts, configs, result, out)


def _load(args) -> Any:
    import torch

    from editing.fastpath import accelerate
    from editing.models import load_model

    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    return accelerate(load_model(args.model, device=args.device, dtype=getattr(args, "dtype", None) or None))


def _prompts(spec: MethodSpec, args) -> dict[str, str]:
    """The prompts as run and recorded (a left-out target resolved to the source, so replay is exact)."""
    prompts = {role: getattr(args, role) for role in spec.prompts}
    if spec.target_defaults_to_source and prompts.get("target") is None:
        prompts["target"] = prompts["source"]
    return prompts


def _resolve(spec: MethodSpec, model, values: dict[str, Any], configs: dict[str, Any]) -> dict[str, Any]:
    """`spec.resolve` (if any) with the config fields given on the command line (`values` not None)."""
    if spec.resolve is None:
        return configs
    names = {f.name for cls in spec.configs.values() for f in dataclasses.fields(cls)}
    return spec.resolve(model, configs, frozenset(n for n in names if values.get(n) is not None))


def check_out(path: str | Path, inputs: dict[str, str | None] | None = None) -> None:
    """Results are PNGs: lossless, so a replay can match them pixel for pixel, and they carry their recipe.
    Refused before any model runs: a result or its recipe that would overwrite one of the run's `inputs`
    (the recipe could then never be replayed), and a place that cannot be written."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"--out {str(path)!r} must name a .png file (results are lossless PNGs that carry their recipe)")
    _check_free(path, inputs or {}, f"--out {str(path)!r}")
    check_folder(path.parent, f"--out {str(path)!r}")


def _check_free(path: Path, inputs: dict[str, str | None], what: str) -> None:
    """Neither a result nor its recipe JSON may overwrite an input or land on a folder."""
    for written in (path, recipe_path_for(path)):
        for role, given in inputs.items():
            if given is not None and Path(given).resolve() == written.resolve():
                raise ValueError(f"{what} would overwrite the --{role} file {given!r} (the result or its recipe "
                                 "JSON); choose another output name")  # fmt: skip
        if written.is_dir():
            raise ValueError(f"cannot write {str(written)!r}: a folder of that name is in the way")


def check_folder(folder: str | Path, what: str) -> None:
    """The folder results go to can be written, or made where it is missing; else one sentence naming
    `what`. Nothing is made here: a run refused later (a bad value, a missing model) leaves no empty
    folder behind; `save_png` makes it when the result is written."""
    import tempfile

    folder = Path(folder).absolute()
    existing = next(p for p in (folder, *folder.parents) if p.exists() or p == p.parent)
    try:
        if not existing.is_dir():
            raise NotADirectoryError(20, "a file of that name is in the way", str(existing))
        if existing != folder and not os.access(existing, os.W_OK | os.X_OK):
            raise PermissionError(13, "Permission denied", str(existing))
        if existing == folder:
            tempfile.TemporaryFile(dir=folder).close()
    except OSError as e:
        raise ValueError(f"cannot write {what}: the folder {str(folder)!r} cannot be made or written to "
                         f"({e.strerror or e})") from None  # fmt: skip


def _check_prompts(spec: MethodSpec, model, prompts: dict[str, str], flags: dict[str, Any]) -> None:
    """A text edit without --target on a text model is refused; then one warning line for each
    prompt's words the model will not read (past its text encoder's tokens, or unknown to it): the
    encoder drops them without a word; and one for a guidance flag given to a model that reads no text."""
    info = model.info()
    guided = [f"--{f.replace('_', '-')}" for f in ("guidance_scale", "source_guidance_scale") if flags.get(f) is not None]
    if guided and not info.conditional:  # accepted without a word, and written into the recipe
        warnings.warn(f"{info.name} reads no text (an unconditional model): {' and '.join(guided)} does nothing on it", stacklevel=1)
    if spec.needs_target and not info.conditional:  # as the studio, which offers no Text edit tab there
        raise ValueError(f"{info.name} reads no text (an unconditional model): a text edit would only give the picture back; "
                         "the color and shift commands work on it")  # fmt: skip
    if spec.needs_target and not (prompts.get("target") or "").strip():
        raise ValueError(f"--target is missing: write the text the edited picture should match ({info.name} takes prompts)")
    seen = set()
    for role, prompt in prompts.items():
        if prompt and prompt not in seen:
            seen.add(prompt)
            for notice in model.prompt_reading(prompt).notices(f"--{role}"):
                warnings.warn(notice, stacklevel=1)


def cmd_method(args) -> int:
    spec = METHODS[args.command]
    check_out(args.out, {r: getattr(args, r) for r in spec.inputs + spec.optional_inputs})
    if args.previews is not None:
        check_folder(args.previews, f"--previews {args.previews!r}")
    early = _build_configs(args, spec.configs)  # bad values fail before the model loads
    if spec.check is not None:
        spec.check(early, None, True)
    images, record = _read_inputs(spec, {r: getattr(args, r) for r in spec.inputs + spec.optional_inputs})
    prompts = _prompts(spec, args)
    model = _load(args)
    _check_prompts(spec, model, prompts, vars(args))
    configs = _resolve(spec, model, vars(args), _build_configs(args, spec.configs, model.info()))
    if spec.check is not None:
        spec.check(configs, model.info(), True)
    existed = Path(args.out).exists()
    _, recipe_file = run_to_files(spec, model, images, record, prompts, configs, args.out, args.quiet, args.previews)
    print(f"wrote {args.out} and {recipe_file}" + (" (replacing the earlier result there; --out names another)" if existed else ""))
    return 0


def _parse_values(text: str, kind: type, flag: str = "--values") -> list:
    """Comma-separated values of a field's type (true/false for a bool: bool("false") would be True),
    each once (two equal values would write the same file twice)."""
    parse = _parse_bool if kind is bool else kind
    if text.strip() and not all(v.strip() for v in text.split(",")):
        raise ValueError(f"{flag} '{text}' has an empty value between commas: give each value once, e.g. 1,2,3")
    try:
        values = [parse(v.strip()) for v in text.split(",") if v.strip()]
    except (ValueError, argparse.ArgumentTypeError):
        raise ValueError(f"could not read {flag} '{text}' as comma-separated {kind.__name__} values") from None
    if not values:
        raise ValueError(f"no values in {flag} '{text}': give comma-separated {kind.__name__} values, e.g. 1,2,3")
    twice = sorted({str(v) for v in values if values.count(v) > 1})
    if twice:
        raise ValueError(f"{flag} lists {', '.join(twice)} more than once: each value runs once")
    return values


def cmd_sweep(args) -> int:
    """Every (value, seed) pair, written with its recipe; SDEdit sweeps run as one batch."""
    from editing.metrics import l2, ssim

    spec = METHODS[args.method]
    fields = {f.name: f for cls in spec.configs.values() for f in dataclasses.fields(cls)}
    values = _parse_values(args.values, type(fields[args.param].default))
    if getattr(args, args.param, None) is not None:
        flag = "--" + args.param.replace("_", "-")
        raise ValueError(f"{flag} is what this sweep varies (--param {args.param} --values {args.values}): leave {flag} out")
    if args.seeds is not None and args.seed is not None:
        raise ValueError("give the seeds once: --seeds 0,1,2 (a sweep's seeds), or --seed 3 for a single one")
    seeds = _parse_values(args.seeds, int, "--seeds") if args.seeds is not None else [args.seed or 0]
    paths = {r: getattr(args, r) for r in spec.inputs + spec.optional_inputs}
    out_dir = Path(args.out_dir)
    for v in values:
        for s in seeds:
            _check_free(_sweep_out(out_dir, args, v, s), paths, f"--out-dir {args.out_dir!r}")
    check_folder(out_dir, f"--out-dir {args.out_dir!r}")
    images, record = _read_inputs(spec, paths)
    prompts = _prompts(spec, args)
    reference = images[spec.inputs[0]]
    grid = [(v, s, {**vars(args), args.param: v, "seed": s}) for v in values for s in seeds]
    for *_, given in grid:
        early = _build_configs(given, spec.configs)  # bad values fail before the model loads
        if spec.check is not None:
            spec.check(early, None, False)
    model = _load(args)
    info = model.info()
    _check_prompts(spec, model, prompts, vars(args))
    runs = [(v, s, _resolve(spec, model, given, _build_configs(given, spec.configs, info))) for v, s, given in grid]
    for *_, configs in runs:
        if spec.check is not None:
            spec.check(configs, info, False)
    if "inversion" in spec.configs and args.param != "first_step":
        # one inversion serves every run of a seed: the maps from the lowest T_skip of the sweep
        low = min(c["inversion"].first_step for _, _, c in runs)
        runs = [(v, s, {**c, "inversion": dataclasses.replace(c["inversion"], first_step=low)}) for v, s, c in runs]
    batches: list[dict | None] = [None] * len(runs)  # the batch each result was made in
    if args.method == "sdedit":
        rows = [c for _, _, c in runs]
        batches = [batch_record(rows, i) for i in range(len(rows))]
        results = _drain(_batch_frames(spec, model, images, prompts, rows), args.quiet, "sweep")
    elif args.method == "edit" and (args.param == "eta" or all(c["inversion"] == runs[0][2]["inversion"]
                                                               for _, s, c in runs if s == runs[0][1])):  # fmt: skip
        # per seed, the edits in one batch: of one inversion (a sweep over the edit's own settings, T_skip or
        # guidance), or of one inversion per eta from one set of model calls (an eta sweep)
        results = [None] * len(runs)
        for seed in sorted({s for _, s, _ in runs}):
            idx = [i for i, (_, s, _) in enumerate(runs) if s == seed]
            rows = [runs[i][2] for i in idx]
            frames = _batch_frames(spec, model, images, prompts, rows, etas=args.param == "eta")
            for k, (i, image) in enumerate(zip(idx, _drain(frames, args.quiet, f"seed={seed}"), strict=True)):
                results[i], batches[i] = image, batch_record(rows, k, etas=args.param == "eta")
    else:
        # Seed by seed, so that what a seed's runs share (an inversion, an Imagic optimisation) is computed once.
        results = [None] * len(runs)
        for i in sorted(range(len(runs)), key=lambda k: runs[k][1]):
            value, seed, configs = runs[i]
            results[i] = _drain(spec.run(model, images, prompts, configs), args.quiet, f"{args.param}={value} seed={seed}")
    rows = []
    for (value, seed, configs), result, batch in zip(runs, results, batches, strict=True):
        out = _sweep_out(out_dir, args, value, seed)
        write_result(spec, model, record, prompts, configs, result, out, batch)
        rows.append({args.param: value, "seed": seed, "path": out.name, "l2": l2(reference, result), "ssim": ssim(reference, result)})
    stale = _earlier_sweep(out_dir, {Path(r["path"]).name for r in rows})
    (out_dir / "metrics.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(f"{args.param:>16} {'seed':>5} {'L2':>8} {'SSIM':>7}")
    for r in rows:
        print(f"{r[args.param]:>16} {r['seed']:>5} {r['l2']:>8.4f} {r['ssim']:>7.4f}")
    print(f"wrote {len(rows)} image{'s' if len(rows) != 1 else ''} and {out_dir / 'metrics.json'}{stale}")
    return 0


def _earlier_sweep(out_dir: Path, written: set[str]) -> str:
    """What an earlier sweep in the same folder leaves, said on the "wrote" line: its metrics.json is
    replaced, and results this sweep did not make again stay beside the new ones."""
    try:
        before = json.loads((out_dir / "metrics.json").read_text())
        left = sorted({Path(r["path"]).name for r in before} - written)
    except (OSError, ValueError, TypeError, KeyError):
        return ""
    if not left:
        return " (replacing an earlier sweep's metrics.json)"
    return (f" (replacing an earlier sweep's metrics.json; {len(left)} of its results stay in {out_dir}, not listed there: "
            f"{', '.join(left[:3])}{' …' if len(left) > 3 else ''}; use another --out-dir to keep sweeps apart)")


def _sweep_out(out_dir: Path, args, value, seed: int) -> Path:
    """Where a sweep writes the result of one (value, seed)."""
    return out_dir / f"{args.method}-{args.param}{value}-seed{seed}.png"


def _batch_frames(spec: MethodSpec, model, images, prompts, rows: list[dict[str, Any]], etas: bool = False) -> Iterator[itf.Frame]:
    """A sweep's batch: SDEdit's rows (`sdedit_sweep`), or a seed's text edits (`_edit_batch`); the done
    Frame's result is the list of images, in the rows' order."""
    if spec.name == "sdedit":
        from editing.sweep import sdedit_sweep

        return sdedit_sweep(model, images["guide"], [r["sdedit"] for r in rows], mask=images.get("mask"), prompt=prompts.get("prompt", ""))
    if spec.name == "edit":
        return _edit_batch(model, images, prompts, rows, etas=etas)
    raise ValueError(f"a recipe of {spec.name} made in a batch: only SDEdit and text-edit sweeps run in batches")


def _configs_of(spec: MethodSpec, entries: dict[str, Any]) -> dict[str, Any]:
    """A recipe's configs (role -> {"class", "values"}) as config objects; a damaged one in one sentence."""
    known = {cls.__name__: cls for cls in spec.configs.values()}
    configs = {}
    for role, entry in entries.items():
        if entry["class"] not in known:
            raise ValueError(f"the recipe's config class {entry['class']!r} does not belong to {spec.name}")
        try:
            configs[role] = known[entry["class"]](**entry["values"])
        except (TypeError, ValueError, AttributeError) as e:  # an unknown field, a wrong type or range: an edited recipe
            raise ValueError(f"the recipe's {role} settings are not valid {entry['class']} values ({e})") from None
    return configs


def cmd_replay(args) -> int:
    recipe = read_recipe(args.recipe)
    spec = METHODS.get(recipe["method"])
    if spec is None:
        raise ValueError(f"the recipe's method {recipe['method']!r} is not known; known: {sorted(METHODS)}")
    configs = _configs_of(spec, recipe["configs"])
    batch = recipe.get("batch") if not args.alone else None
    if batch is not None:  # the sweep's whole batch, whose row `index` this result is
        try:
            rows, index = [_configs_of(spec, entries) for entries in batch["configs"]], int(batch["index"])
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ValueError(f"the recipe's batch record is damaged ({e}); --alone replays the result by itself") from None
        if not 0 <= index < len(rows) or rows[index] != configs:
            raise ValueError("the recipe's batch does not hold its own settings at its index: the recipe was edited; "
                             "--alone replays the result by itself")  # fmt: skip
    dtype_name = recipe.get("dtype", "float32")
    if dtype_name not in ("float32", "float16", "bfloat16"):
        raise ValueError(f"the recipe's dtype {dtype_name!r} is not one of float32, float16, bfloat16")
    paths = {role: str(input_path(args.recipe, rec["file"])) for role, rec in recipe["inputs"].items()}
    given_roles = set()
    for given in args.input:
        role, sep, path = given.partition("=")
        given_roles.add(role)
        if not sep or role not in paths:
            raise ValueError(f"--input {given!r}: give ROLE=PATH with ROLE one of the recipe's inputs: {', '.join(sorted(paths))}")
        paths[role] = path
    if "mask" in paths and not Path(paths["mask"]).is_file() and "colour" in paths and Path(paths["colour"]).is_file():
        from editing.images import load_rgba

        if (load_rgba(paths["colour"])[..., 3] < 255).any():  # a transparent colour layer: its paint is the mask
            del paths["mask"]
    missing = [f"{role} ({paths[role]})" for role in paths if not Path(paths[role]).is_file()]
    if missing:
        roles = " ".join(f"--input {role}=FILE" for role in paths if not Path(paths[role]).is_file())
        raise ValueError(f"the recipe's inputs are missing: {', '.join(missing)}; keep the files a recipe names beside it "
                         f"(the studio's download offers them with the result), or name your own copies: {roles}")  # fmt: skip
    images, record = _read_inputs(spec, paths)
    _studio_downscaled(images, record, recipe["inputs"], given_roles)
    for role, rec in recipe["inputs"].items():
        if role not in record:  # derived (a transparent colour layer's mask): its pixels must still be the recipe's
            if pixel_sha256(images[role]) != rec["sha256"]:
                raise ValueError(f"the {role} painted by the colour layer {paths['colour']} is not the recipe's")
            continue
        if record[role]["sha256"] != rec["sha256"]:
            why = "is not the one the recipe was made from" if role in given_roles else "has changed since the recipe was written"
            raise ValueError(f"the {role} image at {paths[role]} {why}")
    out = args.out or str(Path(args.recipe).with_name(Path(args.recipe).stem + "-replay.png"))
    check_out(out, {**paths, "recipe": args.recipe})
    import torch

    from editing.fastpath import accelerate
    from editing.models import load_model

    model = accelerate(load_model(recipe["model"]["id"], device=args.device or recipe.get("device"), dtype=dtype_name))
    threads = args.threads or (recipe.get("threads") if model.device.type == "cpu" else None)
    if isinstance(threads, int) and threads >= 1:
        torch.set_num_threads(threads)
    if model.weights_hash != recipe["model"]["weights_hash"]:
        warnings.warn(f"model weights differ from the recipe's ({model.weights_hash} != {recipe['model']['weights_hash']})", stacklevel=1)
    made = recipe["model"].get("config_hash")  # recipes before it record none
    if made and model.config_hash != made:
        warnings.warn(f"the model's configs (scheduler, prediction type...) differ from the recipe's ({model.config_hash} != "
                      f"{made})", stacklevel=1)  # fmt: skip
    prompts = recipe.get("prompts", {})
    if batch is not None:
        result = _drain(_batch_frames(spec, model, images, prompts, rows, bool(batch.get("etas"))), args.quiet, "batch")[index]
        recipe_file = write_result(spec, model, record, prompts, configs, result, out, batch)
    else:
        result, recipe_file = run_to_files(spec, model, images, record, prompts, configs, out, args.quiet)
    expected = recipe.get("output", {}).get("sha256")
    same = expected == pixel_sha256(result)
    why = "" if same else _difference(args.recipe, recipe, result, out, args.alone)
    info = model.info()
    made_on, runs_on = (str(recipe.get("device", "")), dtype_name), (str(info.device), str(info.dtype))
    if not same and made_on != runs_on:
        why += (f"; the recipe was made on {made_on[0]} in {made_on[1]} and this replay ran on {runs_on[0]} in {runs_on[1]}: "
                "other devices and precisions round differently, so only a replay where it was made can match to the bit")  # fmt: skip
    print(f"wrote {out} and {recipe_file}; pixels {'identical to' if same else 'DIFFERENT from'} the recipe's output{why}")
    return 0 if same or expected is None else 1


def _studio_downscaled(images: dict, record: dict, recorded: dict, given: set[str]) -> None:
    """An input given with --input whose pixels are not the recipe's, but are once shrunk as the
    studio and its API shrink pictures over 1024 px: the recipe names the picture the run used, which
    the API does not send back, so the caller's own larger file stands for it."""
    from editing.images import studio_downscale

    for role in sorted(given & set(record)):
        if role not in ("guide", "image") or record[role]["sha256"] == recorded[role]["sha256"]:
            continue
        small = studio_downscale(images[role])
        if small is not None and pixel_sha256(small) == recorded[role]["sha256"]:
            (h, w), (sh, sw) = images[role].shape[:2], small.shape[:2]
            print(f"note: the {role} given is {w}x{h}; the run used it downscaled to {sw}x{sh}, as the studio does")
            images[role], record[role] = small, {**record[role], "sha256": recorded[role]["sha256"]}


def _difference(recipe_file: str, recipe: dict[str, Any], result: np.ndarray, out: str, alone: bool = False) -> str:
    """How a replay differs from the recorded output, when that PNG is at hand; and why it may, for a batched result."""
    text = ""
    original = recipe.get("output", {}).get("file")
    path = input_path(recipe_file, original) if original else None
    if path is not None and path.is_file() and path.resolve() != Path(out).resolve():  # not overwritten by this replay
        from editing.images import load_image

        before = load_image(path)
        if before.shape == result.shape:
            diff = np.abs(before.astype(np.int16) - result.astype(np.int16)).max(axis=-1)
            if not diff.any():  # the PNG beside the recipe is this result: the recorded hash is what changed
                return (f" (but identical to {path.name} beside it: the recipe's recorded output hash does not match "
                        "that PNG, so the recipe or the PNG was edited)")  # fmt: skip
            text = f" ({int((diff > 0).sum())} of {diff.size} pixels differ, by at most {int(diff.max())} of 255)"
    import torch

    made, now = recipe.get("threads"), torch.get_num_threads()
    if isinstance(made, int) and made != now and str(recipe.get("device", "")).startswith("cpu"):
        text += (f"; the recipe was made with {made} CPU threads and this replay used {now}, which can round "
                 f"differently in the last bits (--threads {made})")  # fmt: skip
    batch = recipe.get("batch", {}).get("size") or recipe.get("studio", {}).get("batch")  # "studio": recipes before the batch record
    if batch and (alone or "batch" not in recipe):
        text += (f"; the recorded result was made in a batch of {batch} (a sweep) and replay ran it alone, which can round "
                 "differently in the last bits")  # fmt: skip
    return text


def _warning_line(message, category, filename, lineno, line=None) -> str:
    """Warnings as one line, as errors are (Python's default adds a line of this module's source)."""
    return f"warning: {message}\n"


def _negative_values(argv: list[str]) -> list[str]:
    """`--values -4,0,4` as `--values=-4,0,4`: argparse takes a word starting with "-" for an option."""
    out, i = [], 0
    while i < len(argv):
        if argv[i] == "--values" and i + 1 < len(argv) and re.match(r"-[\d.]", argv[i + 1]):
            out.append(f"--values={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def main(argv: list[str] | None = None) -> int:
    try:  # building the parser imports torch: a Ctrl-C then printed a 40-line traceback
        args = build_parser().parse_args(_negative_values(sys.argv[1:] if argv is None else argv))
    except KeyboardInterrupt:
        print("interrupted: no result written", file=sys.stderr)
        return 130
    from editing.models import ModelNotFoundError

    warnings.formatwarning = _warning_line
    try:
        if args.command == "sweep":
            return cmd_sweep(args)
        if args.command == "replay":
            return cmd_replay(args)
        return cmd_method(args)
    except (ValueError, ModelNotFoundError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # writing the result failed after all (a full disk, a folder removed meanwhile)
        print(f"error: could not write the result: {exc.strerror or exc} ({exc.filename})", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: no result written", file=sys.stderr)
        return 130
