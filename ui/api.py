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

from editing.images import load_rgba
from editing.interface import ColorEditConfig, EditConfig, ImagicConfig, InversionConfig, SDEditConfig, ShiftConfig
from ui.canvas import image_to_editor_value
from ui.compare import Compare
from ui.defaults import PATCH_DEFAULTS, studio_default, studio_step_default
from ui.handlers import Refusal, Studio, Updates, as_number, has_imagic
from ui.state import Session


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


def _image(path: str | None, name: str = "image") -> np.ndarray:
    """A sent file as RGBA pixels; files Pillow cannot read are refused with a message."""
    if path is None:
        raise Refusal(f"Send {'an' if name == 'image' else 'the'} {name} (gradio_client: handle_file('path.png')).")
    try:
        return load_rgba(path)  # upright, as a photo viewer shows it (EXIF orientation)
    except ValueError as e:
        raise Refusal(f"Unsupported {name} file {Path(path).name!r}: send a PNG, JPEG or WebP image.") from e


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
        elif "step" in up:  # optimisation steps carry a loss but no image: the info still streams
            yield up.get("output"), {"step": up["step"]}


def _recipe(files: list[str] | None) -> dict | None:
    if not files:
        return None
    with open(files[1]) as f:
        return json.load(f)


def add_api(studio: Studio, compare: Compare) -> None:
    """Register the endpoints inside the current Blocks."""
    info = studio.info

    def num(cls: type, name: str, label: str | None = None, integer: bool = False) -> gr.Number:
        return _number(studio_default(info, cls, name), label or name, integer)

    def step_index(cls: type, name: str) -> gr.Number:
        """T_skip, t1, t2: left out, the studio's share of the steps actually run (18 of 50 is 7 of 20)."""
        # the handler's parameter defaults to None too, which is what makes it optional for the client
        return _number(None, name, integer=True, optional=True,
                       info=f"a step index; default: {studio_default(info, cls, name)} of "
                            f"{studio_default(info, InversionConfig, 'steps')} steps, scaled with steps")  # fmt: skip

    def at_steps(cls: type, name: str, value: int | None, steps: int) -> int:
        return studio_step_default(info, cls, name, steps) if value is None else value

    with gr.Column(visible=False):
        session = gr.State(Session())
        # A file path, not pixels: Gradio would fail on a non-image before the handler could explain.
        image = gr.File(label="image", file_types=None)
        out_image = gr.Image(type="numpy", format="png", label="image")
        out_info = gr.JSON(label="info")
        prompt = gr.Textbox("", label="prompt")
        source, target = gr.Textbox("", label="source_prompt"), gr.Textbox("", label="target_prompt")
        t0, steps = num(SDEditConfig, "t0"), num(SDEditConfig, "steps", integer=True)
        guidance, seed = num(SDEditConfig, "guidance_scale"), num(SDEditConfig, "seed", integer=True)
        inv_steps, eta = num(InversionConfig, "steps", integer=True), num(InversionConfig, "eta")
        src_guidance = num(InversionConfig, "source_guidance_scale")
        skip, tgt_guidance = step_index(EditConfig, "skip"), num(EditConfig, "guidance_scale")
        colour, mask = gr.File(label="colour", file_types=None), gr.File(label="mask", file_types=None)
        patch = gr.File(label="patch", file_types=None)
        patch_x, patch_y = _number(PATCH_DEFAULTS["patch_x"], "patch_x"), _number(PATCH_DEFAULTS["patch_y"], "patch_y")
        patch_scale = _number(PATCH_DEFAULTS["patch_scale"], "patch_scale")
        cut_background = gr.Checkbox(PATCH_DEFAULTS["cut_background"], label="cut_background")
        k_strength, k_keep = num(ColorEditConfig, "strength"), gr.Checkbox(True, label="keep_outside")
        # choices as text, checked by the handlers: a Radio refused a bad value in Gradio's words, naming no
        # parameter, with a traceback in the server's log
        k_mode = gr.Textbox(studio_default(info, ColorEditConfig, "mode"), label="mode")
        k_alpha, k_cfg = num(ColorEditConfig, "alpha"), num(ColorEditConfig, "guidance_scale")
        k_t1, k_t2, k_skip = step_index(ColorEditConfig, "t1"), step_index(ColorEditConfig, "t2"), step_index(ColorEditConfig, "skip")
        h_dx, h_dy = num(ShiftConfig, "dx", integer=True), num(ShiftConfig, "dy", integer=True)
        h_skip, h_cfg = step_index(ShiftConfig, "skip"), num(ShiftConfig, "guidance_scale")
        sweep_tgt_guidance = num(EditConfig, "guidance_scale", label="edit_guidance_scale")  # /sweep has SDEdit's guidance_scale too
        param = gr.Textbox("t0", label="param")
        n_values, n_seeds = _number(6, "n_values", True), _number(1, "n_seeds", True)
        gallery = gr.Gallery(label="images", format="png")  # lossless: the pixels the metrics were computed on
        fast = ImagicConfig.from_preset("fast", info.family) if has_imagic(studio.backend) else ImagicConfig()
        imagic_eta = _number(fast.eta, "eta")
        emb_steps = _number(fast.embedding_steps, "embedding_steps", True)
        ft_steps = _number(fast.finetune_steps, "finetune_steps", True)
        trigger = gr.Button()

    def sdedit(image, prompt, t0, steps, guidance_scale, seed, mask=None, session=None):
        """SDEdit on a guide image (strokes or photo): returns previews, then the result at the guide's size.
        With a mask (white where the picture may change), the Stroke edit tab's: only that region is re-generated."""
        yield from _stream(studio.sdedit(canvas=_with_mask(_canvas(image), mask), prompt=prompt or "", t0=t0, steps=steps,
                                         guidance_scale=guidance_scale, seed=seed, preview_every=1, session=session,
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

    def imagic(image, target_prompt, eta, seed, embedding_steps, finetune_steps, session):
        """Imagic with the engine's "fast" preset: optimise, fine-tune (cached by content), render at η."""
        yield from _stream(studio.imagic(canvas=_canvas(image), target_prompt=target_prompt or "", preset="fast", eta=eta,
                                         guidance_scale=fast.guidance_scale, steps=fast.steps, seed=seed, preview_every=5,
                                         embedding_steps=embedding_steps, finetune_steps=finetune_steps, session=session))  # fmt: skip

    def sweep(image, prompt, param, n_values, n_seeds, t0, steps, skip=None, eta=None, guidance_scale=None, seed=None, source_prompt=None,
              target_prompt=None, edit_guidance_scale=None, session=None):  # fmt: skip
        """Sweep t0 (SDEdit) or T_skip / η (inversion + edit): one result per value and seed, with metrics.
        guidance_scale is SDEdit's, edit_guidance_scale the text edit's target guidance."""
        last: Updates = {}
        skip = at_steps(EditConfig, "skip", skip, steps)
        for up in compare.sweep(canvas=_canvas(image), param=param, n_values=n_values, n_seeds=n_seeds, prompt=prompt or "",
                                source_prompt=source_prompt or "", target_prompt=target_prompt or "", t0=t0, steps=steps, skip=skip,
                                eta=eta, guidance_scale=guidance_scale, edit_guidance_scale=edit_guidance_scale, seed=seed,
                                session=session):  # fmt: skip
            last = up if "gallery" in up else last
        items = last.get("session", session).sweep
        results = [{"param": param, "value": it.value, "seed": it.seed, **it.metrics, "recipe": _recipe(compare.files_of(it))}
                   for it in items]  # fmt: skip
        return [(it.image, it.label) for it in items], results

    common = {"concurrency_id": "model", "show_progress": "hidden"}
    trigger.click(sdedit, [image, prompt, t0, steps, guidance, seed, mask, session], [out_image, out_info], api_name="sdedit", **common)
    trigger.click(composite, [image, patch, prompt, t0, steps, guidance, seed, patch_x, patch_y, patch_scale, cut_background, mask, session],
                  [out_image, out_info], api_name="composite", **common)  # fmt: skip
    trigger.click(edit, [image, source, target, inv_steps, eta, src_guidance, skip, tgt_guidance, seed, session],
                  [out_image, out_info], api_name="edit", **common)  # fmt: skip
    trigger.click(color, [image, colour, mask, prompt, k_strength, k_keep, k_mode, k_alpha, k_t1, k_t2, k_skip, k_cfg, inv_steps, eta,
                          src_guidance, seed, session], [out_image, out_info], api_name="color", **common)  # fmt: skip
    trigger.click(shift, [image, prompt, h_dx, h_dy, h_skip, h_cfg, inv_steps, eta, src_guidance, seed, session], [out_image, out_info],
                  api_name="shift", **common)  # fmt: skip
    trigger.click(imagic, [image, target, imagic_eta, seed, emb_steps, ft_steps, session], [out_image, out_info], api_name="imagic", **common)
    trigger.click(sweep, [image, prompt, param, n_values, n_seeds, t0, inv_steps, skip, eta, guidance, seed, source, target,
                          sweep_tgt_guidance, session],
                  [gallery, out_info], api_name="sweep", **common)  # fmt: skip
