"""Named API endpoints (/sdedit, /composite, /edit, /color, /shift, /imagic, /sweep) for gradio_client.

They take plain images instead of the editor's layered value and run through the same handlers
as the page. Their components sit in a hidden column: Gradio exposes an event's api_name whatever
triggers it, so a hidden button is the trigger and the API page documents plain parameters.
Each call streams (image, info) pairs: one per step with info {"step": [i, n, stage]} (the image
is the preview, or None between previews), then the result with info {"recipe": ..., "status": ...};
the result is the PNG with its recipe embedded, as the page's download. /sweep returns the images
and one entry per result: value, seed, metrics and its recipe.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from editing.images import MAX_SIDE, load_rgba
from editing.interface import ColorEditConfig, EditConfig, ImagicConfig, InversionConfig, SDEditConfig, ShiftConfig
from ui.canvas import image_to_editor_value
from ui.compare import MAX_SEEDS, MAX_VALUES, Compare
from ui.defaults import PATCH_DEFAULTS, shift_units, studio_default, studio_step_default
from ui.handlers import Refusal, Studio, Updates, as_number, has_imagic
from ui.state import Session


def _describe(component: gr.components.Component, text: str, example: Any = None) -> Any:
    """`text` as the component's description on the API page and in `client.view_api()` (Gradio's
    would be empty, or, for a file, its FileData class's docstring); `example`: the page's sample value
    (a file's is otherwise a PDF on the internet)."""
    as_input = component.api_info
    text = text[:1].upper() + text[1:]  # a sentence after Gradio's own on the API page ("The input value that is provided...")

    component.api_info = lambda: {**as_input(), "additional_description": text}  # parameters
    component.api_info_as_output = lambda: {**as_input(), "description": text}  # returned values
    if example is not None:
        component.example_payload = lambda: example
    return component


def _file(label: str, text: str) -> gr.File:
    """An API file parameter: a path, not pixels (Gradio would fail on a non-image before the handler
    could explain), described, with one of the repository's pictures as the API page's sample."""
    sample = "assets/examples/smiley.png"
    return _describe(gr.File(label=label, file_types=None), text,
                     {"path": sample, "url": sample, "orig_name": Path(sample).name, "meta": {"_type": "gradio.FileData"}})


def _number(value: Any, label: str, integer: bool = False, optional: bool = False, **kw: Any) -> gr.Number:
    """An API number. Gradio's own would pass a string to the handler or fail on it in its own words
    ("could not convert string to float"), and round 2.5 steps to 2 without a word; this one refuses
    a value that is not a number naming the parameter, reads numeric strings, and refuses a fraction
    for a whole-number parameter. `optional`: None means "the default", which the handler works out
    (a step index, from the steps actually run). (Its preprocess is set on the instance: a subclass
    of a Gradio component makes Gradio write a .pyi stub beside this module.)"""
    component = gr.Number(value=value, label=label, precision=0 if integer else None, **kw)

    component.preprocess = lambda payload: None if payload is None and optional else as_number(label, payload, integer)
    return component


def _flag(value: bool, label: str) -> gr.Checkbox:
    """An API yes/no: true or false (JSON's, or the words), anything else refused naming the parameter
    (Gradio's own passes "false" or "no" on, which Python reads as true)."""
    component = gr.Checkbox(value, label=label)

    def preprocess(payload: Any) -> bool:
        if isinstance(payload, (bool, np.bool_)):
            return bool(payload)
        if isinstance(payload, str) and payload.strip().lower() in ("true", "false"):
            return payload.strip().lower() == "true"
        raise Refusal(f"{label}={payload!r} must be true or false.")

    component.preprocess = preprocess
    return component


def _text(label: str, value: str = "") -> gr.Textbox:
    """An API text: a string (None: empty); a number or a list is refused, not run as its Python spelling."""
    component = gr.Textbox(value, label=label)

    def preprocess(payload: Any) -> str:
        if payload is None or isinstance(payload, str):
            return payload or ""
        raise Refusal(f"{label}={payload!r} must be text.")

    component.preprocess = preprocess
    return component


def _image(path: str | None, name: str = "image") -> np.ndarray:
    """A sent file as RGBA pixels; files Pillow cannot read are refused with a message."""
    if path is None:
        raise Refusal(f"Send {'an' if name == 'image' else 'the'} {name} (gradio_client: handle_file('path.png')).")
    try:
        return load_rgba(path)  # upright, as a photo viewer shows it (EXIF orientation)
    except ValueError as e:  # "cannot read image PATH: why" (not a picture, damaged, too large), named as it was sent
        why = str(e).replace(str(path), repr(Path(path).name), 1)
        raise Refusal(f"The {name} file: {why}.") from e


def _canvas(path: str | None) -> dict:
    """The sent file as an editor value; a blank one (all transparent, or all white) is refused in the
    API's terms (the studio's message speaks of painting on its canvas)."""
    rgba = _image(path)
    if (rgba[..., 3] == 0).all() or (rgba[..., :3] == 255).all():
        raise Refusal("The image is blank (all white or transparent): send the picture or painting to edit.")
    return image_to_editor_value(rgba)


def _mask_layer(mask: str, base: np.ndarray) -> np.ndarray:
    """A sent mask file (white = selected; black or transparent = not) as the canvas's mask layer."""
    from editing.images import load_mask

    m = _image(mask, "mask")
    if m.shape[:2] != base.shape[:2]:
        raise Refusal(f"The mask is {m.shape[1]}x{m.shape[0]}, the image {base.shape[1]}x{base.shape[0]}: send them at the same size.")
    selected = load_mask(m)
    if not selected.any():  # an empty mask layer means "no mask" on the canvas: the whole picture would change
        raise Refusal("The mask selects nothing: send it white where the picture may change (black or transparent elsewhere).")
    layer = np.zeros(base.shape[:2] + (4,), np.uint8)
    layer[selected] = 255
    return layer


def _with_mask(canvas: dict, mask: str | None) -> dict:
    """The canvas with a sent mask file as its mask layer (no strokes), or as it is without one."""
    if mask is None:
        return canvas
    return {**canvas, "layers": [np.zeros_like(canvas["background"]), _mask_layer(mask, canvas["background"])]}


def _colour_canvas(image: str | None, colour: str | None, mask: str | None) -> dict:
    """/color's inputs as the Colour edit tab's canvas: the photo, the new colours as the strokes layer
    (a transparent colour image is the strokes as painted; an opaque one is the picture repainted, and
    `mask` says where), and the mask, white where the colour goes (transparent = not there)."""
    base, paint = _image(image), _image(colour, "colour")
    if paint.shape[:2] != base.shape[:2]:
        raise Refusal(f"The colour image is {paint.shape[1]}x{paint.shape[0]}, the image {base.shape[1]}x{base.shape[0]}: "
                       "send them at the same size.")  # fmt: skip
    layers = [paint]
    if mask is not None:
        mask_layer = _mask_layer(mask, base)
        selected = mask_layer[..., 3] > 0
        if (paint[..., 3] == 255).all():  # the picture repainted: its colours count inside the mask only
            paint = np.concatenate([paint[..., :3], (selected * 255).astype(np.uint8)[..., None]], axis=2)
        layers = [paint, mask_layer]
    elif (paint[..., 3] == 255).all():
        raise Refusal("Send a mask (white where the colour goes), or a colour image that is transparent where nothing changes.")
    elif (paint[..., 3] == 0).all():
        raise Refusal("The colour image is transparent everywhere: paint the new colour where it goes.")
    return {**image_to_editor_value(base), "layers": layers}


def _stream(updates: Iterator[Updates]) -> Iterator[tuple[Any, dict]]:
    """Handler updates -> (image, info) pairs, one per preview, then the result PNG (its recipe
    embedded, as the page's download) with the recipe."""
    for up in updates:
        if up.get("files"):
            yield up["files"][0], {"recipe": _recipe(up["files"]), "status": up.get("status", "")}
        elif "step" in up:  # optimisation steps carry no image, and their loss where the step computed one
            yield up.get("output"), {"step": up["step"], **({"loss": up["loss"]} if "loss" in up else {})}


def _recipe(files: list[str] | None) -> dict | None:
    if not files:
        return None
    with open(files[1]) as f:
        return json.load(f)


def add_api(studio: Studio, compare: Compare) -> None:
    """Register the endpoints inside the current Blocks."""
    info = studio.info

    def num(cls: type, name: str, text: str, label: str | None = None, integer: bool = False) -> gr.Number:
        return _describe(_number(studio_default(info, cls, name), label or name, integer), text)

    def step_index(cls: type, name: str, text: str) -> gr.Number:
        """T_skip, t1, t2: left out, the studio's share of the steps actually run (18 of 50 is 7 of 20)."""
        # the handler's parameter defaults to None too, which is what makes it optional for the client
        default = f"{studio_default(info, cls, name)} of {studio_default(info, InversionConfig, 'steps')} steps, scaled with steps"
        return _describe(_number(None, name, integer=True, optional=True), f"{text}; a step index in [0, steps - 1], "
                         f"counted from the noisiest; left out: {default}")  # fmt: skip

    def at_steps(cls: type, name: str, value: int | None, steps: int) -> int:
        return studio_step_default(info, cls, name, steps) if value is None else value

    reach, cells = shift_units(info)
    guidance_text = "classifier-free guidance of the {}, in [0, 30]; 1 = none"
    with gr.Column(visible=False):
        session = gr.State(Session())
        image = _file("image", "the picture: a painting of coloured strokes, or a photo (PNG, JPEG, WebP...; read upright, "
                      f"as its EXIF orientation says); over {MAX_SIDE} px it is run downscaled. gradio_client: handle_file('path.png')")
        out_image = _describe(gr.Image(type="numpy", format="png", label="image"),
                              "a preview while the run goes (None between previews), then the result: a PNG at the picture's "
                              "size with its recipe embedded")  # fmt: skip
        out_info = _describe(gr.JSON(label="info"),
                             "while it runs {'step': [i, n, stage]} (and 'loss' at Imagic's optimisation previews); at the end "
                             "{'recipe': how the result was made, 'status': notes such as a downscale or prompt words left out}")  # fmt: skip
        prompt = _describe(_text("prompt"), "what the picture should show (the emoji model reads e.g. 'red apple, google "
                           "style'); empty: no text")  # fmt: skip
        source = _describe(_text("source_prompt"), "what the picture shows now: the inversion's prompt; may be empty")
        target = _describe(_text("target_prompt"), "what the edited picture should show")
        t0 = num(SDEditConfig, "t0", "SDEdit's strength, in (0, 1]: the share of the schedule re-run from noise; low keeps "
                 "the guide, high looks more real")  # fmt: skip
        steps = num(SDEditConfig, "steps", "denoising steps of the whole schedule, in [1, 1000] (t0 x steps of them run)",
                    integer=True)  # fmt: skip
        guidance = num(SDEditConfig, "guidance_scale", guidance_text.format("prompt (SDEdit's)"))
        seed = num(SDEditConfig, "seed", "in [0, 2^63 - 1]: the same seed and settings give the same pixels", integer=True)
        inv_steps = num(InversionConfig, "steps", "inversion (and regeneration) steps, in [2, 1000]", integer=True)
        eta = num(InversionConfig, "eta", "the inversion's eta, in (0, 1]: 1 is DDPM, the paper's")
        src_guidance = num(InversionConfig, "source_guidance_scale", guidance_text.format("source prompt while inverting"))
        skip = step_index(EditConfig, "skip", "T_skip: the steps skipped before the target prompt takes over; higher keeps "
                          "more of the picture")  # fmt: skip
        tgt_guidance = num(EditConfig, "guidance_scale", guidance_text.format("target prompt"))
        colour = _file("colour", "the new colours: a PNG transparent where nothing changes, or the picture repainted (then "
                       "send mask too); the picture's size")  # fmt: skip
        mask = _file("mask", "optional: white where the picture may change, black or transparent elsewhere; the picture's size")
        patch = _file("patch", "the picture to paste in (its transparency kept)")
        patch_x = _describe(_number(PATCH_DEFAULTS["patch_x"], "patch_x"), "the patch's centre across the picture, in [0, 1]")
        patch_y = _describe(_number(PATCH_DEFAULTS["patch_y"], "patch_y"), "the patch's centre down the picture, in [0, 1]")
        patch_scale = _describe(_number(PATCH_DEFAULTS["patch_scale"], "patch_scale"),
                                "the patch's width as a share of the picture's, in [0.05, 1]")  # fmt: skip
        cut_background = _describe(_flag(bool(PATCH_DEFAULTS["cut_background"]), "cut_background"),
                                   "true or false: an opaque patch on one flat colour (an object on white) has that colour "
                                   "cut out first")  # fmt: skip
        k_strength = num(ColorEditConfig, "strength", "mode 'x0': how hard the colour is pushed in, in [0, 1]")
        k_keep = _describe(_flag(True, "keep_outside"), "true or false: hold the rest of the picture to the source")
        # choices as text, checked by the handlers: a Radio refused a bad value in Gradio's words, naming no
        # parameter, with a traceback in the server's log
        k_mode = _describe(_text("mode", studio_default(info, ColorEditConfig, "mode")),
                           "'x0' (push into the predicted picture, by strength) or 'noise' (the paper's push on the noise "
                           "maps, by alpha)")  # fmt: skip
        k_alpha = num(ColorEditConfig, "alpha", "mode 'noise': the push per step, in [0, 20]")
        k_cfg = num(ColorEditConfig, "guidance_scale", guidance_text.format("prompt while regenerating"))
        k_t1 = step_index(ColorEditConfig, "t1", "the first step that takes the colour")
        k_t2 = step_index(ColorEditConfig, "t2", "the last step that takes the colour (past the last step: to the end)")
        k_skip = step_index(ColorEditConfig, "skip", "T_skip: the steps skipped before regenerating")
        h_dx = num(ShiftConfig, "dx", f"the move right ({cells}; negative: left), in [-{reach}, {reach}]; content leaving one "
                   "edge comes back at the other", integer=True)  # fmt: skip
        h_dy = num(ShiftConfig, "dy", f"the move down ({cells}; negative: up), in [-{reach}, {reach}]", integer=True)
        h_skip = step_index(ShiftConfig, "skip", "T_skip: the steps skipped before regenerating around the move")
        h_cfg = num(ShiftConfig, "guidance_scale", guidance_text.format("prompt while regenerating"))
        # /sweep has SDEdit's guidance_scale too
        sweep_tgt_guidance = num(EditConfig, "guidance_scale", guidance_text.format("target prompt (T_skip and eta sweeps)"),
                                 label="edit_guidance_scale")  # fmt: skip
        param = _describe(_text("param", "t0"), "what varies: 't0' (SDEdit), 'T_skip' (or 'skip') or 'eta' (inversion + edit, "
                          "which need source_prompt and target_prompt)")  # fmt: skip
        sweep_steps = num(InversionConfig, "steps", "denoising steps: SDEdit's whole schedule (t0 sweeps) or the inversion's "
                          "(T_skip and eta sweeps), in [2, 1000]", integer=True)  # fmt: skip
        n_values = _describe(_number(6, "n_values", True), f"how many values of param, spread over its range, in [1, {MAX_VALUES}]")
        n_seeds = _describe(_number(1, "n_seeds", True), f"how many seeds (seed, seed + 1...), in [1, {MAX_SEEDS}]")
        gallery = _describe(gr.Gallery(label="images", format="png"),  # lossless: the pixels the metrics were computed on
                            "the results so far, value by value, each seed's after the last's")  # fmt: skip
        results = _describe(gr.JSON(label="results"), "one entry per image: param, value, seed, its metrics (l2 and ssim "
                            "to the guide; realism and alignment with the emoji encoder), its recipe, and 'status' when the "
                            "sweep has notes (a downscale, prompt words left out)")  # fmt: skip
        repeats = num(SDEditConfig, "repeats", "SDEdit's K: perturb and denoise K times, each from the last's result, in [1, 10]",
                      integer=True)  # fmt: skip
        sampler = _describe(_text("sampler", studio_default(info, SDEditConfig, "sampler")),
                            "'ddpm' (the paper's stochastic sampler) or 'ddim' (deterministic)")  # fmt: skip
        fast = ImagicConfig.from_preset("fast", info.family) if has_imagic(studio.backend) else ImagicConfig()
        paper = ImagicConfig.from_preset("paper", info.family) if has_imagic(studio.backend) else ImagicConfig()

        def preset_number(name: str, text: str, integer: bool = False) -> gr.Number:
            """Left out, the preset's (a "paper" run with the fast step counts was the Imagic tab's old trap)."""
            return _describe(_number(None, name, integer, optional=True), f"{text}; left out: the preset's "
                             f"(fast {getattr(fast, name):g}, paper {getattr(paper, name):g})")  # fmt: skip

        imagic_preset = _describe(_text("preset", "fast"), "'fast' (few steps; the studio's) or 'paper' (the paper's steps, "
                                  "learning rates and guidance: hours on a CPU)")  # fmt: skip
        imagic_guidance = preset_number("guidance_scale", guidance_text.format("interpolated embedding"))
        imagic_steps = preset_number("steps", "stage 3: sampling steps of the render, in [1, 1000]", integer=True)
        imagic_eta = _describe(_number(fast.eta, "eta"), "in [0, 1.5]: 0 renders the picture back, 1 the target text's "
                               "embedding; past 1 goes further")  # fmt: skip
        emb_steps = preset_number("embedding_steps", "stage 1: Adam steps fitting the text embedding to the picture, in "
                                  "[0, 100000]", integer=True)  # fmt: skip
        ft_steps = preset_number("finetune_steps", "stage 2: Adam steps fine-tuning the model on the picture, in [0, 100000]",
                                 integer=True)  # fmt: skip
        trigger = gr.Button()

    def sdedit(image, prompt, t0, steps, guidance_scale, seed, mask=None, repeats=1, sampler="ddpm", session=None):
        """SDEdit on a guide image (strokes or photo): returns previews, then the result at the guide's size.
        With a mask (white where the picture may change), the Stroke edit tab's: only that region is re-generated."""
        yield from _stream(studio.sdedit(canvas=_with_mask(_canvas(image), mask), prompt=prompt or "", t0=t0, steps=steps,
                                         guidance_scale=guidance_scale, seed=seed, repeats=repeats, sampler=sampler,
                                         preview_every=1, session=session,
                                         mode="stroke" if mask is None else "mask"))  # fmt: skip

    def composite(image, patch, prompt, t0, steps, guidance_scale, seed, patch_x, patch_y, patch_scale, cut_background, mask=None,
                  session=None):  # fmt: skip
        """The Composite tab: the patch pasted onto the image, centred at (patch_x, patch_y) in [0, 1] of the image and
        patch_scale of its width, then blended in by SDEdit inside its footprint (plus the mask, if sent). With
        cut_background, an opaque patch on one flat colour (an object on white) has that colour cut out first."""
        yield from _stream(studio.sdedit(canvas=_with_mask(_canvas(image), mask), prompt=prompt or "", t0=t0, steps=steps, guidance_scale=guidance_scale,
                                         seed=seed, preview_every=1, session=session, mode="composite", patch=_image(patch, "patch"),
                                         patch_x=patch_x, patch_y=patch_y, patch_scale=patch_scale,
                                         cut_background=bool(cut_background)))  # fmt: skip

    # None defaults: Gradio offers a component without a value (the step indices) as optional only then
    def edit(image, source_prompt, target_prompt, steps, eta, source_guidance_scale, skip=None, guidance_scale=None, seed=None,
             session=None):  # fmt: skip
        """Edit-friendly DDPM inversion of the image under the source prompt, regenerated under the target prompt."""
        yield from _stream(studio.text_edit(
            canvas=_canvas(image), source_prompt=source_prompt or "", target_prompt=target_prompt or "", steps=steps, eta=eta,
            source_guidance_scale=source_guidance_scale, seed=seed, skip=at_steps(EditConfig, "skip", skip, steps),
            guidance_scale=guidance_scale, preview_every=1, session=session))  # fmt: skip

    def color(image, colour, mask=None, prompt=None, strength=None, keep_outside=None, mode=None, alpha=None, t1=None, t2=None,
              skip=None, guidance_scale=None, steps=None, eta=None, source_guidance_scale=None, seed=None, session=None):  # fmt: skip
        """Colour edit: the new colours (a transparent PNG of the paint, or the picture repainted with a mask) pushed
        into the photo through its inverted noise maps; keep_outside holds the rest of the picture to the source."""
        yield from _stream(studio.color_edit(
            canvas=_colour_canvas(image, colour, mask), prompt=prompt or "", strength=strength, keep_outside=bool(keep_outside),
            mode=mode, alpha=alpha, t1=at_steps(ColorEditConfig, "t1", t1, steps), t2=at_steps(ColorEditConfig, "t2", t2, steps),
            skip=at_steps(ColorEditConfig, "skip", skip, steps), guidance_scale=guidance_scale, steps=steps, eta=eta,
            source_guidance_scale=source_guidance_scale, seed=seed, preview_every=1, session=session))  # fmt: skip

    def shift(image, prompt, dx, dy, skip=None, guidance_scale=None, steps=None, eta=None, source_guidance_scale=None, seed=None,
              session=None):  # fmt: skip
        """Image shift: the noise maps rolled by (dx, dy) cells of model space (right and down), the picture redrawn."""
        yield from _stream(studio.shift(
            canvas=_canvas(image), prompt=prompt or "", dx=dx, dy=dy, skip=at_steps(ShiftConfig, "skip", skip, steps),
            guidance_scale=guidance_scale, steps=steps, eta=eta, source_guidance_scale=source_guidance_scale, seed=seed,
            preview_every=1, session=session))  # fmt: skip

    def imagic(image, target_prompt, eta, seed, embedding_steps=None, finetune_steps=None, guidance_scale=None, steps=None,
               preset="fast", session=None):  # fmt: skip
        """Imagic at a preset ("fast" or "paper"): optimise, fine-tune (cached by content), render at η."""
        try:
            base = ImagicConfig.from_preset(preset, info.family)
        except ValueError:
            base = fast  # the handler says why: no Imagic on this model, or a preset it does not know
        yield from _stream(studio.imagic(canvas=_canvas(image), target_prompt=target_prompt or "", preset=preset, eta=eta,
                                         guidance_scale=base.guidance_scale if guidance_scale is None else guidance_scale,
                                         steps=base.steps if steps is None else steps, seed=seed, preview_every=5,
                                         embedding_steps=embedding_steps, finetune_steps=finetune_steps, session=session))  # fmt: skip

    def sweep(image, prompt, param, n_values, n_seeds, steps, skip=None, eta=None, guidance_scale=None, seed=None, source_prompt=None,
              target_prompt=None, edit_guidance_scale=None, session=None):  # fmt: skip
        """Sweep t0 (SDEdit) or T_skip / η (inversion + edit): one result per value and seed, with metrics.
        guidance_scale is SDEdit's, edit_guidance_scale the text edit's target guidance."""
        skip = at_steps(EditConfig, "skip", skip, steps)
        param = "T_skip" if param == "skip" else param  # the step parameter's own name here
        notes, rows = "", []
        for up in compare.sweep(canvas=_canvas(image), param=param, n_values=n_values, n_seeds=n_seeds, prompt=prompt or "",
                                source_prompt=source_prompt or "", target_prompt=target_prompt or "", steps=steps, skip=skip,
                                t0=studio_default(info, SDEditConfig, "t0"),  # not read: a t0 sweep's values are the t0s
                                eta=eta, guidance_scale=guidance_scale, edit_guidance_scale=edit_guidance_scale, seed=seed,
                                session=session):  # fmt: skip
            notes = " ".join(up["notices"]) if "notices" in up else notes
            items = up["session"].sweep if "session" in up else []
            if "gallery" in up and len(items) > len(rows):  # the results so far, as each seed's (or value's) finish
                rows += [{"param": param, "value": it.value, "seed": it.seed, **it.metrics, "recipe": _recipe(compare.files_of(it)),
                          **({"status": notes} if notes else {})} for it in items[len(rows):]]  # fmt: skip
                yield [(it.image, it.label) for it in items], list(rows)

    common = {"concurrency_id": "model", "show_progress": "hidden"}
    trigger.click(sdedit, [image, prompt, t0, steps, guidance, seed, mask, repeats, sampler, session], [out_image, out_info],
                  api_name="sdedit", **common)  # fmt: skip
    trigger.click(composite, [image, patch, prompt, t0, steps, guidance, seed, patch_x, patch_y, patch_scale, cut_background, mask, session],
                  [out_image, out_info], api_name="composite", **common)  # fmt: skip
    trigger.click(edit, [image, source, target, inv_steps, eta, src_guidance, skip, tgt_guidance, seed, session],
                  [out_image, out_info], api_name="edit", **common)  # fmt: skip
    trigger.click(color, [image, colour, mask, prompt, k_strength, k_keep, k_mode, k_alpha, k_t1, k_t2, k_skip, k_cfg, inv_steps, eta,
                          src_guidance, seed, session], [out_image, out_info], api_name="color", **common)  # fmt: skip
    trigger.click(shift, [image, prompt, h_dx, h_dy, h_skip, h_cfg, inv_steps, eta, src_guidance, seed, session], [out_image, out_info],
                  api_name="shift", **common)  # fmt: skip
    trigger.click(imagic, [image, target, imagic_eta, seed, emb_steps, ft_steps, imagic_guidance, imagic_steps, imagic_preset, session],
                  [out_image, out_info], api_name="imagic", **common)  # fmt: skip
    trigger.click(sweep, [image, prompt, param, n_values, n_seeds, sweep_steps, skip, eta, guidance, seed, source, target,
                          sweep_tgt_guidance, session],
                  [gallery, results], api_name="sweep", **common)  # fmt: skip
