"""The studio page: canvas on the left, result on the right, one tab per method below.

Components are bound to handlers by name (`inputs_kwargs`), never by position, and handlers
yield dicts keyed by output name; `bind` maps those names to components.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr

from editing.images import load_rgba
from editing.interface import (
    Backend,
    ColorEditConfig,
    EditConfig,
    ImagicConfig,
    InversionConfig,
    ModelInfo,
    SDEditConfig,
    ShiftConfig,
)
from ui import gradio_cache
from ui.api import add_api
from ui.canvas import image_to_editor_value
from ui.compare import Compare
from ui.compare_tab import compare_tab
from ui.defaults import PATCH_DEFAULTS, PATCH_RANGES, canvas_side, shift_units, studio_default
from ui.handlers import (
    IMAGIC_MISSING,
    Studio,
    count_stop,
    has_imagic,
    inversion_missing,
    result_to_canvas,
    stopped,
    text_edit_missing,
)
from ui.keep import Keeper
from ui.state import Session
from ui.widgets import as_toast, follow_steps, howto, model_run, scroll_to, seed_row, slider

EXAMPLES = Path(__file__).resolve().parent.parent / "assets" / "examples"
# Brush palette: saturated colours that read well as SDEdit strokes, plus the custom picker.
PALETTE = ["#1f1f1f", "#ffffff", "#d93025", "#f29900", "#fbd23c", "#1e8e3e", "#4285f4", "#9334e6", "#8d5524", "#ff8fb1"]
CSS = """
.ss-progress {position: relative; height: 22px; border-radius: 6px; background: var(--block-background-fill);
  border: 1px solid var(--border-color-primary); overflow: hidden}
.ss-bar {position: absolute; inset: 0 auto 0 0; background: var(--color-accent); opacity: .35; transition: width .2s}
.ss-progress span {position: relative; padding-left: 8px; font-size: 13px; line-height: 22px}
#ss-output img, #ss-selected img, .ss-gallery img {image-rendering: pixelated}
#ss-output img, #ss-selected img {width: 100%; height: 100%; object-fit: contain}  /* 32 px previews fill the frame too */
.ss-howto {font-size: 14px; opacity: .85}
#ss-files .empty {height: 56px !important; min-height: 0 !important}
/* keyboard focus: Gradio's theme draws none on sliders and radios, a faint one on buttons */
input[type=range]:focus-visible, input[type=radio]:focus-visible, input[type=checkbox]:focus-visible, button:focus-visible
  {outline: 2px solid var(--color-accent) !important; outline-offset: 2px}
/* a phone: each control of a row on a line of its own (a row keeps side by side what fits in 160 px each, so a
   prompt sat in half the width beside its slider), and the examples strip under "New blank canvas", full width */
@media (max-width: 600px) {
  .ss-stack .row > *, .ss-stack .row > .form > *, .ss-stack.row > * {min-width: 100% !important}
  /* a sweep's results in rows of three that fit the screen (six of 100 px each ran off its side) */
  #ss-sweep .grid-container, #ss-cross .grid-container {--grid-cols: 3 !important}
}
"""
# Run once when the page loads (demo.launch(js=...)): the status line and the waiting line are polite live
# regions, so a screen reader says "Done" or a refusal; leaving the page (reload, back) with a result on it
# asks first, as an editor does: the canvas and the result are not kept by the page.
JS = """
() => {
  const live = () => {
    for (const id of ["ss-status", "ss-waiting"]) {
      const el = document.getElementById(id);
      if (el && !el.hasAttribute("aria-live")) { el.setAttribute("role", "status"); el.setAttribute("aria-live", "polite"); }
    }
  };
  live();
  new MutationObserver(live).observe(document.body, {childList: true, subtree: true});
  window.addEventListener("beforeunload", (e) => {
    if (document.querySelector("#ss-output img")) { e.preventDefault(); e.returnValue = ""; }
  });
}
"""
THEME = gr.themes.Soft(primary_hue="indigo", secondary_hue="amber")


def model_label(name: str) -> str:
    """A local folder shows as its name (the full path is noise in a header); presets and hub ids as given."""
    return Path(name).name if Path(name).is_dir() else name


def example_files() -> list[Path]:
    """Stroke paintings first (what the embedded model is for), then photos."""
    files = [p for p in EXAMPLES.glob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp")]
    return sorted(files, key=lambda p: (p.name.startswith("photo-"), p.name))


def build_ui(backend: Backend) -> gr.Blocks:
    """The whole studio over one backend. Nothing heavy happens here: the model is already loaded."""
    gradio_cache.install()  # two runs with the same picture never read each other's half-written copy
    studio = Studio(backend)
    info = studio.info
    # captioned: a screen reader named them "Thumbnail 1 of 6" only (the caption is the picture's alt text)
    example_paths = [(str(p), example_caption(p)) for p in example_files()]
    compare = Compare(studio)
    side = canvas_side(info)
    text = info.conditional
    with gr.Blocks(title="Stroke Studio") as demo:
        session = gr.State(Session())
        keeper = Keeper()  # the last run's canvas and prompts, which the browser keeps over a reload (ui/keep.py)
        gr.Markdown(
            f"## Stroke Studio\nPaint, then let a diffusion model make it real. Model: **{model_label(info.name)}** "
            f"({info.family}, {info.resolution} px{', text prompts' if text else ', unconditional'})."
            + (f" Status: *{info.status}* (its model card says what it can and cannot do)." if info.status else "")
        )
        with gr.Row(equal_height=False):
            with gr.Column(scale=5, min_width=380):
                canvas = gr.ImageEditor(
                    value=None, label="Canvas", type="numpy", image_mode="RGBA", format="png", sources=("upload", "clipboard"),
                    brush=gr.Brush(colors=PALETTE, default_color=PALETTE[6], default_size=max(4, side // 20), color_mode="defaults"),
                    eraser=gr.Eraser(default_size=max(6, side // 12)), layers=gr.LayerOptions(layers=["strokes", "mask"]),
                    canvas_size=(side, side), height=440, elem_id="ss-canvas",
                )  # fmt: skip
                gr.Markdown(
                    "Layers (menu at the canvas' bottom right): **strokes** is your picture; **mask** marks where the model "
                    "may change pixels (Stroke edit, Composite, Colour edit, a Compare sweep); its eye icon hides it. Upload or paste a photo with the image tool.",
                    elem_classes="ss-howto",
                )
                with gr.Row(equal_height=False, elem_classes="ss-stack"):
                    blank = gr.Button("New blank canvas", size="sm", scale=1, min_width=120)
                    examples = gr.Gallery(
                        example_paths, label="Examples (click to load)", columns=6, height=120,
                        allow_preview=False, interactive=False, scale=4, elem_classes="ss-gallery", elem_id="ss-examples",
                        buttons=[], visible=bool(example_paths),
                    )  # fmt: skip
            with gr.Column(scale=4, min_width=320):
                output = gr.Image(label="Result", type="numpy", format="png", interactive=False, height=380, elem_id="ss-output")
                progress = gr.HTML('<div class="ss-progress"><span>Ready</span></div>')
                waiting = gr.Markdown("", elem_id="ss-waiting")  # a run waiting for the model says so here (model_run)
                with gr.Row(equal_height=True):
                    show = gr.Radio(["predicted x0", "current x_t"], value="predicted x0", label="Stream", container=False, scale=3)
                    stop = gr.Button("■ Stop", variant="stop", size="sm", scale=1, min_width=80)
                    again = gr.Button("↺ Edit this result", size="sm", scale=1, min_width=120, elem_id="ss-again")
                status = gr.Markdown(elem_id="ss-status")
                files = gr.File(label="Download: result PNG (recipe embedded), recipe JSON and inputs; "
                                      "python -m editing replay NAME.json re-runs them", file_count="multiple",
                                interactive=False, height=210, elem_id="ss-files")  # fmt: skip
        out = {"output": output, "progress": progress, "files": files, "status": status, "session": session}
        shared = {"canvas": canvas, "show": show, "session": session}
        runs = []

        def run(button: gr.Button, fn: Callable, controls: dict, outputs: dict | None = None, **fixed: Any) -> None:
            # Gradio's progress on the Result only (a border while it runs); a run that waits says so in `waiting`
            # (model_run): Gradio's "queue: 1/2" there is replaced by the frames of the run ahead.
            outs = outputs or out
            button.click(None, js=scroll_to("ss-output"), queue=False, api_visibility="private")
            runs.append(model_run(button, functools.partial(fn, **fixed), outs, {**shared, **controls}, session, waiting, keeper,
                                  concurrency_id="model", show_progress="full", show_progress_on=output))  # fmt: skip

        describing: list[gr.Textbox] = []  # the prompts that say what the picture shows: an example fills them

        def prompt_box(label: str, value: str = "", describes: bool = False, **kw: Any) -> gr.Textbox:
            # hidden and empty on a model that reads no text: the engine would be sent words it ignores (and warn)
            box = gr.Textbox(value=value if text else "", label=label, visible=text, **kw)
            if describes and text:
                describing.append(box)
            return box

        last_step = studio_default(info, InversionConfig, "steps") - 1  # step-indexed sliders: 0..steps-1 (follow_steps)

        def inversion_controls() -> dict:
            with gr.Accordion("Inversion settings", open=False):
                return {
                    "steps": slider(info, InversionConfig, "steps", maximum=500),
                    "eta": slider(info, InversionConfig, "eta"),
                    "source_guidance_scale": slider(info, InversionConfig, "source_guidance_scale"),
                    "seed": seed_row(info, InversionConfig),
                    "preview_every": slider(info, InversionConfig, "preview_every"),
                }

        with gr.Tabs(elem_classes="ss-stack"):
            with gr.Tab("Stroke → image"):
                howto("Paint coarse coloured blobs (or load an example), describe it, press **Generate**. "
                      "Low t0 keeps your strokes; high t0 gives a more realistic picture.")  # fmt: skip
                with gr.Row(equal_height=True):
                    s_prompt = prompt_box("Prompt", "a smiling face emoji", describes=True, scale=4)
                    s_t0 = slider(info, SDEditConfig, "t0", scale=3)
                    s_go = gr.Button("Generate", variant="primary", scale=1)
                with gr.Row():
                    faithful = gr.Button("◀ More faithful")
                    realistic = gr.Button("More realistic ▶")
                with gr.Accordion("Advanced", open=False):
                    s_adv = {
                        "steps": slider(info, SDEditConfig, "steps", maximum=500),
                        "guidance_scale": slider(info, SDEditConfig, "guidance_scale", visible=text),
                        "repeats": slider(info, SDEditConfig, "repeats"),
                        "sampler": gr.Radio(["ddpm", "ddim"], value=studio_default(info, SDEditConfig, "sampler"), label="Sampler"),
                        "seed": seed_row(info, SDEditConfig),
                        "preview_every": slider(info, SDEditConfig, "preview_every"),
                    }
                s_controls = {"prompt": s_prompt, "t0": s_t0, **s_adv}
                run(s_go, studio.sdedit, s_controls)
                search_out = {**out, "t0": s_t0}
                for button, direction in ((faithful, "faithful"), (realistic, "realistic")):
                    run(button, compare.search, s_controls, search_out, direction=direction)

            with gr.Tab("Stroke edit"):
                howto("Load a picture, switch to the **mask** layer and paint over the part to change, then paint new strokes "
                      "on the **strokes** layer. Only the masked region is re-generated. The mask lies over your strokes: "
                      "hide it with its eye icon (layers menu) to see what you paint under it.")  # fmt: skip
                with gr.Row(equal_height=True):
                    e_prompt = prompt_box("Prompt", describes=True, scale=4)
                    e_t0 = slider(info, SDEditConfig, "t0", scale=3)
                    e_go = gr.Button("Edit inside mask", variant="primary", scale=1)
                with gr.Accordion("Advanced", open=False):
                    e_adv = {
                        "steps": slider(info, SDEditConfig, "steps", maximum=500),
                        "guidance_scale": slider(info, SDEditConfig, "guidance_scale", visible=text),
                        "seed": seed_row(info, SDEditConfig),
                    }
                run(e_go, studio.sdedit, {"prompt": e_prompt, "t0": e_t0, **e_adv}, mode="mask")

            with gr.Tab("Composite"):
                howto("Load a background picture on the canvas, add a patch here and place it; SDEdit blends the patch in "
                      "(the patch's footprint, plus any painted mask, is the region re-generated).")  # fmt: skip
                with gr.Row():
                    patch = gr.Image(label="Patch (PNG with transparency works best)", type="numpy", image_mode="RGBA", height=180)
                    with gr.Column():
                        c_geo = {
                            "patch_x": gr.Slider(*PATCH_RANGES["patch_x"], PATCH_DEFAULTS["patch_x"], step=0.01, label="Centre x"),
                            "patch_y": gr.Slider(*PATCH_RANGES["patch_y"], PATCH_DEFAULTS["patch_y"], step=0.01, label="Centre y"),
                            "patch_scale": gr.Slider(*PATCH_RANGES["patch_scale"], PATCH_DEFAULTS["patch_scale"], step=0.01,
                                                     label="Patch width (fraction of canvas)"),
                            "cut_background": gr.Checkbox(PATCH_DEFAULTS["cut_background"], label="Cut out a plain background",
                                                          info="An opaque patch on one flat colour (a JPEG on white) is pasted "
                                                               "without it; patches with transparency and photos are pasted as "
                                                               "they are"),
                        }  # fmt: skip
                with gr.Row(equal_height=True):
                    c_prompt = prompt_box("Prompt", scale=4)
                    c_t0 = slider(info, SDEditConfig, "t0", scale=3)
                    c_go = gr.Button("Blend patch", variant="primary", scale=1)
                with gr.Accordion("Advanced", open=False):
                    c_adv = {"steps": slider(info, SDEditConfig, "steps", maximum=500),
                             "guidance_scale": slider(info, SDEditConfig, "guidance_scale", visible=text),
                             "seed": seed_row(info, SDEditConfig)}  # fmt: skip
                run(c_go, studio.sdedit, {"prompt": c_prompt, "t0": c_t0, "patch": patch, **c_geo, **c_adv}, mode="composite")

            with gr.Tab("Text edit"):
                if missing := text_edit_missing(info):
                    gr.Markdown(missing)
                else:
                    howto("Describe the picture as it is (source) and as you want it (target). The picture is inverted once per "
                          "session; changing only the target, T_skip or guidance re-renders without inverting again.")  # fmt: skip
                    with gr.Row(equal_height=True):
                        t_src = prompt_box("Source prompt (what the picture shows)", describes=True, scale=3)
                        t_tgt = prompt_box("Target prompt (what it should show)", scale=3)
                        t_go = gr.Button("Edit", variant="primary", scale=1)
                    with gr.Row():
                        t_skip = slider(info, EditConfig, "skip", maximum=last_step)
                        t_cfg = slider(info, EditConfig, "guidance_scale", label="Target guidance")
                    t_inv = inversion_controls()
                    follow_steps(t_inv["steps"], t_skip)
                    run(t_go, studio.text_edit, {"source_prompt": t_src, "target_prompt": t_tgt, "skip": t_skip, "guidance_scale": t_cfg,
                                                 **t_inv})  # fmt: skip

            with gr.Tab("Colour edit"):
                if missing := inversion_missing(info, "The colour edit"):
                    gr.Markdown(missing)
                else:
                    howto("Load a picture and paint the new colour on the **strokes** layer over what should change colour "
                          "(or mark the region on the **mask** layer). The colour is pushed in through the noise maps.")  # fmt: skip
                    with gr.Row(equal_height=True):
                        k_prompt = prompt_box("Prompt (what the picture shows)", describes=True, scale=4)
                        k_strength = slider(info, ColorEditConfig, "strength", scale=3)
                        # on in the studio (a recolour is expected to stay where it was painted); off is the paper's method
                        k_keep = gr.Checkbox(value=True, label="Keep the rest of the picture", scale=2,
                                             info="off: the paper's method, where the whole picture may shift with the colour")  # fmt: skip
                        k_go = gr.Button("Recolour", variant="primary", scale=1)
                    with gr.Accordion("Advanced", open=False), gr.Row():
                        k_mode = gr.Radio([("predicted image (x0)", "x0"), ("noise maps (authors' code)", "noise")],
                                          value=studio_default(info, ColorEditConfig, "mode"), label="Push the colour into")  # fmt: skip
                        k_adv = {"mode": k_mode, "alpha": slider(info, ColorEditConfig, "alpha"),
                                 "t1": slider(info, ColorEditConfig, "t1", maximum=last_step),
                                 "t2": slider(info, ColorEditConfig, "t2", maximum=last_step),
                                 "skip": slider(info, ColorEditConfig, "skip", maximum=last_step),
                                 "guidance_scale": slider(info, ColorEditConfig, "guidance_scale")}  # fmt: skip
                    k_inv = inversion_controls()
                    follow_steps(k_inv["steps"], k_adv["t1"], k_adv["t2"], k_adv["skip"])
                    run(k_go, studio.color_edit, {"prompt": k_prompt, "strength": k_strength, "keep_outside": k_keep, **k_adv, **k_inv})

            with gr.Tab("Shift"):
                if missing := inversion_missing(info, "The shift"):
                    gr.Markdown(missing)
                else:
                    howto("Move the picture's content: the noise maps are shifted circularly (what leaves one edge comes back at "
                          "the other, as in the paper) and the model redraws the picture around the move. "
                          "T_skip (Advanced) is where the regeneration starts: lower redraws more, higher keeps the move; a model "
                          "trained on centred pictures pulls an early start back to the middle, so a model may name its own "
                          "start (the emoji model does).")  # fmt: skip
                    with gr.Row(equal_height=True):
                        h_prompt = prompt_box("Prompt (what the picture shows)", describes=True, scale=3)
                        reach, unit = shift_units(info)
                        h_dx = slider(info, ShiftConfig, "dx", minimum=-reach, maximum=reach, label=f"Shift x ({unit})", scale=2)
                        h_dy = slider(info, ShiftConfig, "dy", minimum=-reach, maximum=reach, label=f"Shift y ({unit})", scale=2)
                        h_go = gr.Button("Shift", variant="primary", scale=1)
                    with gr.Accordion("Advanced", open=False), gr.Row():
                        h_adv = {"skip": slider(info, ShiftConfig, "skip", maximum=last_step),
                                 "guidance_scale": slider(info, ShiftConfig, "guidance_scale")}
                    h_inv = inversion_controls()
                    follow_steps(h_inv["steps"], h_adv["skip"])
                    run(h_go, studio.shift, {"prompt": h_prompt, "dx": h_dx, "dy": h_dy, **h_adv, **h_inv})

            with gr.Tab("Imagic"):
                if has_imagic(backend):
                    runs.append(imagic_tab(info, studio, shared, out, waiting, keeper))
                else:
                    gr.Markdown(IMAGIC_MISSING)

            with gr.Tab("Compare"):
                runs.extend(compare_tab(info, compare, shared, out, text, waiting, keeper))

        # after the cancel, so that no update the run had in flight lands on top of "Stopped"
        # the count first (unqueued): a run still waiting then does nothing when its turn comes (model_run)
        stop.click(count_stop, session, waiting, cancels=runs, queue=False, api_visibility="private").then(
            stopped, [progress, status], [progress, status], queue=False, api_visibility="private"
        )
        # {} rather than None, which Gradio's BrowserState does not write: the kept canvas would come back
        blank.click(lambda: (None, {}), None, [canvas, keeper.state], queue=False, api_visibility="private")
        again.click(as_toast(result_to_canvas), session, [canvas, status], show_progress="hidden", api_visibility="private")  # queued: a toast shows only for queued events
        # an example fills the prompts that say what the picture shows (a target is the user's to write)
        describing += shared.get("describing", []) if text else []

        def load_example(evt: gr.SelectData) -> tuple:
            return _load_example(evt, len(describing))

        examples.select(load_example, None, [canvas, *describing], queue=False, api_visibility="private")
        add_api(studio, compare)
        # after every model run has registered its prompt boxes with the keeper
        # its progress on the (invisible) kept state: Gradio's timer, even "hidden", showed in the status line (a live
        # region) and on the canvas at every page load
        demo.load(keeper.restore, keeper.state, [canvas, status, *keeper.boxes.values()], queue=False, show_progress="hidden",
                  show_progress_on=keeper.state, api_visibility="private")  # fmt: skip
    return demo


def imagic_tab(info: ModelInfo, studio: Studio, shared: dict, out: dict, waiting: gr.Markdown, keeper: Keeper) -> Any:
    """Controls of the Imagic tab, starting at the engine's "fast" preset for this model family."""
    fast = ImagicConfig.from_preset("fast", info.family)
    howto("Load or paint a picture and write one target text. Imagic optimises a text embedding to the picture and "
          "fine-tunes a copy of the model on it (the slow part, cached), then η blends towards your text: "
          "0 reconstructs the picture, 1 follows the text. Changing only η or the seed re-renders quickly.")  # fmt: skip
    with gr.Row(equal_height=True):
        prompt = gr.Textbox(label="Target text", scale=4)
        eta = gr.Slider(0, 1.5, value=fast.eta, step=0.05, label="η (0 = input, 1 = text)", scale=3)
        go = gr.Button("Run Imagic", variant="primary", scale=1)
    with gr.Accordion("Advanced", open=False), gr.Row():
        adv = {
            "preset": gr.Radio(["fast", "paper"], value="fast", label="Preset", info="paper: the paper's steps (hours on a CPU)"),
            "embedding_steps": gr.Slider(0, 2000, value=fast.embedding_steps, step=10, label="Embedding steps (stage 1)"),
            "finetune_steps": gr.Slider(0, 2000, value=fast.finetune_steps, step=10, label="Fine-tuning steps (stage 2)"),
            "guidance_scale": gr.Slider(0, 30, value=fast.guidance_scale, step=0.5, label="Guidance"),
            "steps": gr.Slider(1, 500, value=fast.steps, step=1, label="Sampling steps"),
            "seed": seed_row(info, ImagicConfig),
        }
    # Choosing a preset shows its values (the paper's 1000 / 1500 steps, guidance 7.5): the sliders are
    # what runs, so without this "paper" would run the paper's learning rates with the fast step counts.
    shown = ("embedding_steps", "finetune_steps", "guidance_scale", "steps")
    adv["preset"].input(lambda name: [getattr(ImagicConfig.from_preset(name, info.family), k) for k in shown], adv["preset"],
                        [adv[k] for k in shown], queue=False, api_visibility="private")  # fmt: skip
    go.click(None, js=scroll_to("ss-output"), queue=False, api_visibility="private")
    return model_run(go, studio.imagic, out, {**shared, "target_prompt": prompt, "eta": eta, **adv}, shared["session"], waiting, keeper,
                     concurrency_id="model", show_progress="full", show_progress_on=out["output"])  # fmt: skip


def example_caption(path: Path) -> str:
    """An example's short name, which fits under its thumbnail: "apple", "cat"."""
    return path.stem.removeprefix("photo-").replace("-", " ")


def _load_example(evt: gr.SelectData, n_prompts: int) -> Any:
    """The example on the canvas, and what it shows (assets/examples/prompts.json) in the `n_prompts` prompts
    that describe the picture; an example without an entry leaves them as they are. With no prompts (a model
    that reads no text), the canvas's value alone: Gradio takes a tuple for one output as that output's value."""
    path = example_files()[evt.index]
    shows = example_prompts().get(path.stem)
    value = image_to_editor_value(load_rgba(path))
    return (value, *[gr.update() if shows is None else shows] * n_prompts) if n_prompts else value


def example_prompts() -> dict[str, str]:
    try:
        return {k: v for k, v in json.loads((EXAMPLES / "prompts.json").read_text()).items() if not k.startswith("_")}
    except (OSError, ValueError):
        return {}
