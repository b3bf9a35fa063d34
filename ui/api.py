"""Named API endpoints (/sdedit, /edit, /imagic, /sweep) for gradio_client.

They take a plain image instead of the editor's layered value and run through the same handlers
as the page. Their components sit in a hidden column: Gradio exposes an event's api_name whatever
triggers it, so a hidden button is the trigger and the API page documents plain parameters.
Each call streams (image, info) pairs: one per step with info {"step": [i, n, stage]} (the image
is the preview, or None between previews), then the result with info {"recipe": ..., "status": ...}.
/sweep returns the images and one entry per result: value, seed, metrics and its recipe.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
from PIL import Image, UnidentifiedImageError

from editing.interface import EditConfig, ImagicConfig, InversionConfig, SDEditConfig
from ui.canvas import image_to_editor_value
from ui.compare import Compare
from ui.defaults import studio_default
from ui.handlers import Studio, Updates, has_imagic
from ui.state import Session


def _canvas(path: str | None) -> dict:
    """The sent file as an editor value; files Pillow cannot read are refused with a message."""
    if path is None:
        raise gr.Error("Send an image (gradio_client: handle_file('path.png')).")
    try:
        with Image.open(path) as im:
            image = np.asarray(im.convert("RGBA"))
    except (UnidentifiedImageError, OSError) as e:
        raise gr.Error(f"Unsupported file {Path(path).name!r}: send a PNG, JPEG or WebP image.") from e
    return image_to_editor_value(image)


def _stream(updates: Iterator[Updates]) -> Iterator[tuple[Any, dict]]:
    """Handler updates -> (image, info) pairs, one per preview, then the final image with its recipe."""
    for up in updates:
        if up.get("files"):
            yield up["output"], {"recipe": _recipe(up["files"]), "status": up.get("status", "")}
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
        return gr.Number(value=studio_default(info, cls, name), label=label or name, precision=0 if integer else None)

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
        skip, tgt_guidance = num(EditConfig, "skip", integer=True), num(EditConfig, "guidance_scale")
        sweep_tgt_guidance = num(EditConfig, "guidance_scale", label="edit_guidance_scale")  # /sweep has SDEdit's guidance_scale too
        param = gr.Radio(["t0", "T_skip", "eta"], value="t0", label="param")
        n_values, n_seeds = gr.Number(6, precision=0, label="n_values"), gr.Number(1, precision=0, label="n_seeds")
        gallery = gr.Gallery(label="images", format="png")  # lossless: the pixels the metrics were computed on
        fast = ImagicConfig.from_preset("fast", info.family) if has_imagic(studio.backend) else ImagicConfig()
        imagic_eta = gr.Number(value=fast.eta, label="eta")
        emb_steps = gr.Number(value=fast.embedding_steps, precision=0, label="embedding_steps")
        ft_steps = gr.Number(value=fast.finetune_steps, precision=0, label="finetune_steps")
        trigger = gr.Button()

    def sdedit(image, prompt, t0, steps, guidance_scale, seed, session):
        """SDEdit on a guide image (strokes or photo): returns previews, then the result at the guide's size."""
        yield from _stream(studio.sdedit(canvas=_canvas(image), prompt=prompt or "", t0=t0, steps=steps,
                                         guidance_scale=guidance_scale, seed=seed, preview_every=1, session=session))  # fmt: skip

    def edit(image, source_prompt, target_prompt, steps, eta, source_guidance_scale, skip, guidance_scale, seed, session):
        """Edit-friendly DDPM inversion of the image under the source prompt, regenerated under the target prompt."""
        yield from _stream(studio.text_edit(
            canvas=_canvas(image), source_prompt=source_prompt or "", target_prompt=target_prompt or "", steps=steps, eta=eta,
            source_guidance_scale=source_guidance_scale, seed=seed, skip=skip, guidance_scale=guidance_scale,
            preview_every=1, session=session))  # fmt: skip

    def imagic(image, target_prompt, eta, seed, embedding_steps, finetune_steps, session):
        """Imagic with the engine's "fast" preset: optimise, fine-tune (cached by content), render at η."""
        yield from _stream(studio.imagic(canvas=_canvas(image), target_prompt=target_prompt or "", preset="fast", eta=eta,
                                         guidance_scale=fast.guidance_scale, steps=fast.steps, seed=seed, preview_every=5,
                                         embedding_steps=embedding_steps, finetune_steps=finetune_steps, session=session))  # fmt: skip

    def sweep(image, prompt, param, n_values, n_seeds, t0, steps, skip, eta, guidance_scale, seed, source_prompt, target_prompt,
              edit_guidance_scale, session):  # fmt: skip
        """Sweep t0 (SDEdit) or T_skip / η (inversion + edit): one result per value and seed, with metrics.
        guidance_scale is SDEdit's, edit_guidance_scale the text edit's target guidance."""
        last: Updates = {}
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
    trigger.click(sdedit, [image, prompt, t0, steps, guidance, seed, session], [out_image, out_info], api_name="sdedit", **common)
    trigger.click(edit, [image, source, target, inv_steps, eta, src_guidance, skip, tgt_guidance, seed, session],
                  [out_image, out_info], api_name="edit", **common)  # fmt: skip
    trigger.click(imagic, [image, target, imagic_eta, seed, emb_steps, ft_steps, session], [out_image, out_info], api_name="imagic", **common)
    trigger.click(sweep, [image, prompt, param, n_values, n_seeds, t0, inv_steps, skip, eta, guidance, seed, source, target,
                          sweep_tgt_guidance, session],
                  [gallery, out_info], api_name="sweep", **common)  # fmt: skip
