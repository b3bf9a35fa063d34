"""Event handlers: generators that stream a method's frames into the page.

Every handler takes keyword arguments named like the controls (layout.py binds components by
name, never by position) and yields dicts of updates keyed by output name:

    output    the image shown on the right (preview while running, result at the end)
    progress  an HTML progress bar with the step count
    files     [PNG with the recipe embedded, recipe JSON, the input PNGs] when a run finishes (the
              set `python -m editing replay <name>.json` re-runs)
    status    a short Markdown line (notices, cache hits, errors the user can fix)
    session   the per-browser Session (gr.State)

Errors the user can fix raise Refusal (a gr.Error): Gradio shows the message and leaves the canvas alone.
"""

from __future__ import annotations

import html
import itertools
import re
from collections.abc import Callable, Generator, Iterator
from dataclasses import asdict
from typing import Any, Literal

import gradio as gr
import numpy as np

from editing.interface import (
    Backend,
    ColorEditConfig,
    EditConfig,
    Frame,
    Guide,
    ImagicConfig,
    InversionConfig,
    ModelInfo,
    SDEditConfig,
    ShiftConfig,
)
from ui.canvas import Canvas, CanvasError, editor_to_canvas, image_to_editor_value, paste_patch
from ui.defaults import PATCH_DEFAULTS, PATCH_RANGES
from ui.recipe import save_run
from ui.state import RunRecord, Session, inversion_key

Show = Literal["predicted x0", "current x_t"]
Updates = dict[str, Any]
STAGES = {"invert": "inverting", "denoise": "denoising", "optimize": "optimising the text embedding",
          "finetune": "fine-tuning the model", "done": "done"}  # fmt: skip
METHOD_LABELS = {"edit": "Text edit", "color": "Colour edit", "shift": "Shift"}  # progress labels of the inversion methods
IMAGIC_MISSING = "Imagic is not available for this model: it needs a text-conditioned model (the emoji model or Stable Diffusion)."


IMAGIC_REUSED = ("Reusing this picture's Imagic optimisation (same picture, text and optimisation settings): only the "
                 "rendering at this η, guidance, steps and seed runs.")  # fmt: skip


class Refusal(gr.Error):
    """An input or setting the user can fix: its message shows on the page, and it is not printed to
    the server's log as a traceback, as Gradio does for every gr.Error (a shared studio's log filled
    with one per refused request)."""

    def __init__(self, message: str):
        super().__init__(message, print_exception=False)


def has_imagic(backend: Backend) -> bool:
    """Imagic is an optional backend capability (text-conditioned models only)."""
    return callable(getattr(backend, "imagic", None))


def inversion_missing(info: ModelInfo, what: str) -> str | None:
    """Why `what` (a method built on DDPM inversion) cannot run on this model, or None: the inversion needs
    a VP model. The studio shows it in place of the method's controls, and a request is refused with it."""
    if info.kind == "vp":
        return None
    return (f"{what} is not available for this model: it works through DDPM inversion, which needs a VP (DDPM-type) "
            "model, and this one is a VE score model (Stroke → image, Stroke edit and Composite work on it).")  # fmt: skip


def text_edit_missing(info: ModelInfo, what: str = "The text edit") -> str | None:
    """Why a text edit (or a T_skip or η sweep of one) cannot run on this model, or None: besides the
    inversion, it needs a model that reads text; an unconditional one would only reconstruct the picture."""
    if missing := inversion_missing(info, what):
        return missing
    if info.conditional:
        return None
    return (f"{what} is not available for this model: it reads no text (an unconditional model), so a text edit would "
            "only give the picture back; Colour edit and Shift work on it.")  # fmt: skip


def refuse(missing: str | None) -> None:
    """A method this model cannot run is refused before anything runs."""
    if missing:
        raise Refusal(missing)


def check_skip(skip: int, steps: int) -> None:
    """T_skip counts steps skipped from the noisiest: it must leave one to run."""
    if not 0 <= int(skip) < int(steps):
        raise Refusal(f"T_skip (skip={skip}) must be smaller than the number of steps ({steps}).")


def progress_html(step: int, total: int, label: str) -> str:
    """The bar under the Result; a progressbar to a screen reader (it was plain text), named by what runs."""
    pct = 100.0 * step / max(total, 1)
    return (
        f'<div class="ss-progress" role="progressbar" aria-label="{html.escape(label)}" aria-valuemin="0" '
        f'aria-valuemax="{total}" aria-valuenow="{step}"><div class="ss-bar" style="width:{pct:.1f}%"></div>'
        f"<span>{label}: step {step} / {total}</span></div>"
    )


_PROGRESS = re.compile(r"<span>(?P<label>[^<]*): step (?P<step>\d+) / (?P<total>\d+)</span>")
STOPPED = "Stopped. A picture the run left on the Result is its last preview, not a finished result."


def stopped(progress: str | None, status: str | None) -> tuple[Any, Any]:
    """What Stop leaves on the page (progress, status): where the run stopped, and that the picture
    shown is a preview. When no run was going, nothing changes (the last result's status stays)."""
    m = _PROGRESS.search(progress or "")
    moving = m is not None and int(m["step"]) < int(m["total"]) and not m["label"].endswith(STAGES["done"])
    if not (moving or (status or "").startswith("Running")):
        return gr.skip(), gr.skip()
    where = f"Stopped: {m['label']}, at step {m['step']} / {m['total']}" if moving else "Stopped"
    return f'<div class="ss-progress"><span>{where}</span></div>', STOPPED


def count_stop(session: Session | None) -> str:
    """Stop, before it cancels: a run that is still waiting in the queue will do nothing (ui.widgets.model_run),
    so its waiting sign goes."""
    if session is not None:
        session.stops += 1
    return ""


def running(notices: list[str], what: str = "Running…") -> str:
    """A run's status while it runs. The downloads are not cleared: a run that waited behind another
    would otherwise wipe that one's files the moment it finished, before anyone could take them."""
    return " ".join([what, "Until it is done, the downloads are the last finished run's.", *notices])


ON_CANVAS = "The result is now the canvas: paint on it, mask a region or edit it by text. Its recipe stays {where}."


def to_canvas(image: np.ndarray | None, missing: str, where: str = "in the downloads") -> tuple[dict, str]:
    """"Edit this result": a finished result becomes the canvas (a plain picture, its layers empty), so
    one edit can follow another without a download and an upload. (canvas value, status)"""
    if image is None:
        raise Refusal(missing)
    return image_to_editor_value(image), ON_CANVAS.format(where=where)


def result_to_canvas(session: Session | None) -> tuple[dict, str]:
    return to_canvas(session.result if session is not None else None,
                     "No finished result yet: run a method first (a stopped run's preview is not a result).")  # fmt: skip


def as_number(name: str, value: Any, integer: bool = False) -> float | int:
    """A value from a number box or an API call as a number, or a Refusal naming `name`: not a number
    (a string, a bool, None), or a fraction where a whole number goes (Gradio would round it unsaid)."""
    if integer and isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)  # as it is: through a float, a seed past 2**53 would lose its last digits
    if integer and isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        return int(value)
    try:
        if isinstance(value, bool):
            raise TypeError
        number = float(value)
    except (TypeError, ValueError):
        raise Refusal(f"{name}={value!r} is not a number.") from None
    if integer:
        if not number.is_integer():
            raise Refusal(f"{name}={value!r} must be a whole number.")
        return int(number)
    return number  # nan and inf reach the config's range check, which names them


def make_config(cls: type, **kwargs: Any) -> Any:
    """Build a config from slider values (floats from the browser become ints where the field is int;
    a fraction there, a seed of 1.5 typed into its box, is refused rather than run as another value)."""
    defaults = cls()
    fixed = {}
    for k, v in kwargs.items():
        default = getattr(defaults, k)
        if isinstance(default, bool) or not isinstance(default, (int, float)):
            fixed[k] = v
            continue
        if v is None or (isinstance(v, str) and not v.strip()):
            raise Refusal(f"{k} is empty: type a number.")
        fixed[k] = as_number(k, v, integer=isinstance(default, int))
    try:
        return cls(**fixed)
    except ValueError as e:
        raise Refusal(str(e)) from e


def read_canvas(canvas: dict | None) -> Canvas:
    try:
        return editor_to_canvas(canvas)
    except CanvasError as e:
        raise Refusal(str(e)) from e


def guarded(method: Callable[..., Iterator[Frame]], *args: Any) -> Iterator[Frame]:
    """Run an engine method; a setting it refuses (ValueError: an empty mask, T_skip >= steps, a VE
    model asked to invert...) becomes a message the user can act on."""
    try:
        yield from method(*args)
    except ValueError as e:
        raise Refusal(str(e)) from e


def stream(frames: Iterator[Frame], show: Show, label: str) -> Iterator[tuple[Frame, Updates]]:
    """Pair every frame with its page update: the chosen preview (when this frame has one) and progress.
    An optimisation's loss comes with its previews; the frames between keep showing the last one."""
    loss, stage = None, None
    for frame in frames:
        if frame.stage != stage:
            loss, stage = None, frame.stage
        loss = frame.loss if frame.loss is not None else loss
        stage_text = STAGES.get(frame.stage, frame.stage)
        text = (label if label.lower() == stage_text else f"{label}, {stage_text}") + (f" (loss {loss:.4f})" if loss is not None else "")
        up: Updates = {"progress": progress_html(frame.step, frame.total, text), "step": [frame.step, frame.total, frame.stage]}
        if frame.loss is not None:  # this step's own (the progress text keeps showing the last one between)
            up["loss"] = float(frame.loss)
        preview = frame.x0 if show == "predicted x0" else frame.xt
        if preview is None:  # between previews, or a preview kind this stage does not produce
            preview = frame.xt if frame.x0 is None else frame.x0
        if preview is not None and not frame.done:
            up["output"] = preview
        yield frame, up


class Studio:
    """The studio's handlers over one backend (the loaded model)."""

    def __init__(self, backend: Backend):
        self.backend = backend
        self.info = backend.info()

    @staticmethod
    def mask_unused(c: Canvas, what: str) -> list[str]:
        """A notice (and toast) when the mask layer is painted for a method that edits the whole picture:
        it was ignored without a word."""
        if c.guide.mask is None:
            return []
        notice = f"The mask layer is left out here: {what} changes the whole picture (Stroke edit and Colour edit use the mask)."
        gr.Info(notice)
        return [notice]

    def prompt_notices(self, **prompts: str) -> list[str]:
        """What the model will not read of each prompt (keyword: how the notice names it, "target_prompt"
        -> "the target prompt"): words past its text encoder's tokens, words it does not know. Shown
        as a toast too: a prompt cut short otherwise edits towards its first words without a word."""
        read = getattr(self.backend, "prompt_reading", None)
        if read is None or not self.info.conditional:
            return []
        out = []
        for name, prompt in prompts.items():
            if isinstance(prompt, str) and prompt.strip():
                out += read(prompt).notices("the " + name.replace("_", " "))
        for notice in out:
            gr.Info(notice)
        return out

    def _finish(self, image: np.ndarray, method: str, configs: dict, prompts: dict, inputs: dict[str, np.ndarray],
                notices: list[str], session: Session | None, mode: str | None = None) -> Updates:  # fmt: skip
        """The result's update, and its files: PNG, recipe and inputs, in the command line's terms
        (`method`, roles), so that `python -m editing replay` re-runs it. The session keeps the result
        for "Edit this result"."""
        files = save_run(self.info, RunRecord(method, configs, prompts, inputs, mode), image)
        h, w = image.shape[:2]
        if session is not None:
            session.result = image
        return {"output": image, "files": files, "status": " ".join([*notices, f"Done: {w}x{h} PNG with its recipe."]),
                "session": session}

    def _run(self, frames: Iterator[Frame], show: Show, label: str) -> Generator[Updates, None, np.ndarray]:
        """Stream frames into the page; return the result image."""
        result = None
        for frame, up in stream(frames, show, label):
            if frame.done:
                result = frame.image if frame.image is not None else frame.result
            yield up
        if not isinstance(result, np.ndarray):
            raise Refusal(f"{label} stopped before producing an image.")
        return result

    # ---------------------------------------------------------------- SDEdit family

    def sdedit(
        self,
        *,
        canvas: dict | None,
        prompt: str,
        t0: float,
        steps: int,
        guidance_scale: float,
        seed: int,
        repeats: int = 1,
        sampler: str = "ddpm",
        preview_every: int = 1,
        show: Show = "predicted x0",
        session: Session | None = None,
        mode: Literal["stroke", "mask", "composite"] = "stroke",
        patch: np.ndarray | None = None,
        patch_x: float = PATCH_DEFAULTS["patch_x"],
        patch_y: float = PATCH_DEFAULTS["patch_y"],
        patch_scale: float = PATCH_DEFAULTS["patch_scale"],
        cut_background: bool = PATCH_DEFAULTS["cut_background"],
    ) -> Iterator[Updates]:
        """SDEdit in three modes: "stroke" (stroke -> image, the whole canvas), "mask" (stroke edit inside the
        mask layer) and "composite" (a patch pasted onto the canvas and blended in, its footprint the mask)."""
        c = read_canvas(canvas)
        guide, method, notices = c.guide, "sdedit", list(c.notices)
        if mode == "stroke" and guide.mask is not None:  # the layer note names the tabs the mask is for
            guide = Guide(image=guide.image, color_mask=guide.color_mask)
            notices.append("The mask layer is left out here: Stroke → image re-generates the whole canvas (Stroke edit uses the mask).")
        if mode == "composite":
            if patch is None:
                raise Refusal("Add a patch picture in the Composite tab first.")
            for name, value in {"patch_x": patch_x, "patch_y": patch_y, "patch_scale": patch_scale}.items():
                lo, hi = PATCH_RANGES[name]
                if not lo <= as_number(name, value) <= hi:
                    raise Refusal(f"{name}={value} is out of range: it goes from {lo:g} to {hi:g}.")
            image, footprint = paste_patch(guide.image, patch, patch_x, patch_y, patch_scale, cut_background)
            if not footprint.any():
                raise Refusal("The patch is transparent everywhere: add a picture with something on it.")
            mask = footprint if guide.mask is None else footprint | guide.mask
            guide, method = Guide(image=image, mask=mask, color_mask=guide.color_mask), "sdedit-composite"
        elif mode == "mask":
            if guide.mask is None:
                raise Refusal("Paint the region to change on the 'mask' layer first (layers menu at the bottom of the canvas).")
            method = "sdedit-masked"
        cfg = make_config(
            SDEditConfig, t0=t0, steps=steps, repeats=repeats, sampler=sampler, guidance_scale=guidance_scale, seed=seed,
            preview_every=preview_every,
        )  # fmt: skip
        for notice in notices:
            gr.Info(notice)
        notices += self.prompt_notices(prompt=prompt)
        yield {"status": running(notices)}
        image = yield from self._run(guarded(self.backend.sdedit, guide, cfg, prompt), show, "SDEdit")
        inputs = {"guide": guide.image, "mask": guide.mask}
        yield self._finish(image, "sdedit", {"sdedit": cfg}, {"prompt": prompt}, inputs, notices, session, method)

    # ---------------------------------------------------------------- inversion family

    def ensure_inversion(self, image: np.ndarray, source_prompt: str, cfg: InversionConfig, session: Session, show: Show,
                         label: str = "Inverting") -> Iterator[Updates]:  # fmt: skip
        """Invert `image` unless this session already holds the same inversion (same image, prompt,
        steps, η, source guidance and seed); sets session.inversion."""
        key = inversion_key(image, source_prompt, cfg)
        if session.inversion_key == key:
            yield {"status": "Reusing this session's inversion (only target-side settings changed)."}
            return
        session.inversion_key, session.inversion = None, None  # never keep a stale handle on failure
        inv = None
        for frame, up in stream(guarded(self.backend.invert, image, source_prompt, cfg), show, label):
            if frame.done:  # the run goes on: to an API client, "done" would say it had ended
                inv, up["step"] = frame.result, [frame.step, frame.total, "invert"]
            yield up
        if inv is None:
            raise Refusal("The inversion stopped before finishing.")
        session.inversion_key, session.inversion = key, inv

    def _inverted_run(self, method, image, source_prompt, inv_cfg, session, show, run, configs, prompts, notices, inputs=None):
        session = session if session is not None else Session()
        yield {"status": running(notices)}
        yield from self.ensure_inversion(image, source_prompt, inv_cfg, session, show)
        result = yield from self._run(run(session.inversion), show, METHOD_LABELS.get(method, method))
        inputs = {"image": image, **(inputs or {})}
        yield self._finish(result, method, {"inversion": inv_cfg, **configs}, prompts, inputs, notices, session)

    def text_edit(
        self, *, canvas: dict | None, source_prompt: str, target_prompt: str, steps: int, eta: float, source_guidance_scale: float,
        seed: int, skip: int, guidance_scale: float, preview_every: int = 1, show: Show = "predicted x0",
        session: Session | None = None,
    ) -> Iterator[Updates]:  # fmt: skip
        """Edit-friendly DDPM inversion, then regeneration under the target prompt."""
        refuse(text_edit_missing(self.info))
        c = read_canvas(canvas)
        if not target_prompt.strip():
            raise Refusal("Write a target prompt: the text the edited image should match.")
        inv_cfg = make_config(InversionConfig, steps=steps, eta=eta, source_guidance_scale=source_guidance_scale, seed=seed,
                              preview_every=preview_every)  # fmt: skip
        cfg = make_config(EditConfig, skip=skip, guidance_scale=guidance_scale, preview_every=preview_every)
        check_skip(cfg.skip, inv_cfg.steps)
        yield from self._inverted_run(
            "edit", c.guide.image, source_prompt, inv_cfg, session, show,
            lambda inv: guarded(self.backend.edit, inv, target_prompt, cfg), {"edit": cfg},
            {"source": source_prompt, "target": target_prompt},
            [*c.notices, *self.mask_unused(c, "the text edit"),
             *self.prompt_notices(source_prompt=source_prompt, target_prompt=target_prompt)],
        )  # fmt: skip

    def color_edit(
        self, *, canvas: dict | None, prompt: str, steps: int, eta: float, source_guidance_scale: float, seed: int,
        strength: float, t1: int, t2: int, skip: int, guidance_scale: float, mode: str = ColorEditConfig.mode, alpha: float = ColorEditConfig.alpha,
        keep_outside: bool = ColorEditConfig.keep_outside,
        preview_every: int = 1, show: Show = "predicted x0", session: Session | None = None,
    ) -> Iterator[Updates]:  # fmt: skip
        """Colour manipulation: invert the photo (background), push the painted colours into the noise maps."""
        refuse(inversion_missing(self.info, "The colour edit"))
        c = read_canvas(canvas)
        mask = c.guide.mask if c.guide.mask is not None else c.guide.color_mask
        if mask is None:
            raise Refusal("Paint the new colour on the 'strokes' layer over the region to recolour.")
        notices = list(c.notices)
        if c.guide.mask is not None and c.guide.color_mask is not None and (c.guide.color_mask & ~c.guide.mask).any():
            share = (c.guide.color_mask & ~c.guide.mask).sum() / c.guide.color_mask.sum()
            notices.append(f"{share:.0%} of the new colour lies outside the mask layer's region and is left out: with a mask "
                           "painted, only the colour inside it goes in.")  # fmt: skip
            gr.Info(notices[-1])
        inv_cfg = make_config(InversionConfig, steps=steps, eta=eta, source_guidance_scale=source_guidance_scale, seed=seed,
                              preview_every=preview_every)  # fmt: skip
        cfg = make_config(ColorEditConfig, strength=strength, mode=mode, alpha=alpha, t1=t1, t2=t2, skip=skip, keep_outside=keep_outside,
                          guidance_scale=guidance_scale, preview_every=preview_every)  # fmt: skip
        yield from self._inverted_run(
            "color", c.background, prompt, inv_cfg, session, show,
            lambda inv: guarded(self.backend.color_edit, inv, c.guide.image, mask, prompt, cfg), {"color": cfg},
            {"source": prompt, "target": prompt}, [*notices, *self.prompt_notices(prompt=prompt)],
            {"colour": c.guide.image, "mask": mask},
        )  # fmt: skip

    def shift(
        self, *, canvas: dict | None, prompt: str, steps: int, eta: float, source_guidance_scale: float, seed: int,
        dx: int, dy: int, skip: int, guidance_scale: float, preview_every: int = 1, show: Show = "predicted x0",
        session: Session | None = None,
    ) -> Iterator[Updates]:  # fmt: skip
        """Image shift: the noise maps are rolled by (dx, dy) and the image regenerated around the move."""
        refuse(inversion_missing(self.info, "The shift"))
        c = read_canvas(canvas)
        if dx == 0 and dy == 0:  # the engine would invert and regenerate the picture unmoved, for nothing
            raise Refusal("Shift x and Shift y are both 0: set how far to move the picture (x to the right, y down).")
        inv_cfg = make_config(InversionConfig, steps=steps, eta=eta, source_guidance_scale=source_guidance_scale, seed=seed,
                              preview_every=preview_every)  # fmt: skip
        cfg = make_config(ShiftConfig, dx=dx, dy=dy, skip=skip, guidance_scale=guidance_scale, preview_every=preview_every)
        yield from self._inverted_run(
            "shift", c.guide.image, prompt, inv_cfg, session, show,
            lambda inv: guarded(self.backend.shift, inv, prompt, cfg), {"shift": cfg}, {"source": prompt, "target": prompt},
            [*c.notices, *self.mask_unused(c, "a shift"), *self.prompt_notices(prompt=prompt)],
        )  # fmt: skip

    # ---------------------------------------------------------------- Imagic

    def imagic(
        self, *, canvas: dict | None, target_prompt: str, preset: str, eta: float, guidance_scale: float, steps: int, seed: int,
        embedding_steps: int | None = None, finetune_steps: int | None = None, preview_every: int = 1,
        show: Show = "predicted x0", session: Session | None = None,
    ) -> Iterator[Updates]:  # fmt: skip
        """Imagic: optimise the embedding, fine-tune a copy, render at η. A cached state (same image, text and
        optimisation settings) re-renders at once, so η and seed are cheap to explore."""
        if not has_imagic(self.backend):
            raise Refusal(IMAGIC_MISSING)
        c = read_canvas(canvas)
        if not target_prompt.strip():
            raise Refusal("Write the target text: what the edited picture should show.")
        try:
            base = ImagicConfig.from_preset(preset, self.info.family)
        except ValueError as e:
            raise Refusal(str(e)) from e
        over = {"embedding_steps": embedding_steps, "finetune_steps": finetune_steps}
        fields = {k: getattr(base, k) if v is None else v for k, v in over.items()}
        cfg = make_config(ImagicConfig, **{**asdict(base), **fields, "eta": eta, "guidance_scale": guidance_scale, "steps": steps,
                                           "seed": seed, "preview_every": preview_every})  # fmt: skip
        notices = [*c.notices, *self.mask_unused(c, "Imagic"), *self.prompt_notices(target_text=target_prompt)]
        yield {"status": running(notices, "Running Imagic…")}
        frames = guarded(self.backend.imagic, c.guide.image, target_prompt, cfg)
        first = next(frames, None)
        optimises = cfg.embedding_steps + cfg.finetune_steps > 0
        if first is not None and optimises and first.stage not in ("optimize", "finetune"):  # its optimised state was cached
            notices.append(IMAGIC_REUSED)
            yield {"status": running(notices, "Running Imagic…")}
        frames = itertools.chain([first] if first is not None else [], frames)
        image = yield from self._run(frames, show, "Imagic")
        yield self._finish(image, "imagic", {"imagic": cfg}, {"target": target_prompt}, {"image": c.guide.image}, notices, session)
