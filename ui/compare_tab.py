"""The Compare tab: a sweep with metrics and the realism-faithfulness plot, and methods side by side."""

from __future__ import annotations

from typing import Any

import gradio as gr

from editing.interface import EditConfig, InversionConfig, ModelInfo, SDEditConfig
from ui.compare import MAX_SEEDS, MAX_VALUES, Compare
from ui.defaults import studio_default
from ui.handlers import text_edit_missing
from ui.keep import Keeper
from ui.widgets import as_toast, follow_steps, howto, model_run, scroll_to, seed_row, slider


def compare_tab(info: ModelInfo, compare: Compare, shared: dict, out: dict, text: bool, waiting: gr.Markdown,
                keeper: Keeper | None = None) -> list[Any]:
    """Build the tab; return its run events (so Stop can cancel them)."""
    howto("Sweep one setting over the canvas and compare the results: faithfulness (L2 to the guide, SSIM), realism and "
          "alignment to the prompt under each (the plot: realism for t0; for T_skip and η the alignment gain, to the target "
          "minus to the source prompt). Drag across points on the plot to open their image; clicking an image highlights its point. "
          "Gradio's plot selects x-ranges, not single points, so the nearest result to the range's centre is opened.")  # fmt: skip
    with gr.Row(equal_height=True):
        no_edits = text_edit_missing(info, "A T_skip or η sweep")  # they sweep a text edit, which this model may not make
        param = gr.Radio([("t0", "t0")] if no_edits else [("t0", "t0"), ("T_skip", "T_skip"), ("η", "eta")], value="t0", label="Sweep",
                         info=no_edits or "t0: SDEdit; T_skip and η: inversion + edit", scale=2)  # fmt: skip
        n_values = gr.Slider(2, MAX_VALUES, 6, step=1, label="Values", scale=1)
        n_seeds = gr.Slider(1, MAX_SEEDS, 2, step=1, label="Seeds", scale=1)
        go = gr.Button("Run sweep", variant="primary", scale=1)
    with gr.Row():
        prompt = gr.Textbox(label="Prompt (SDEdit)", value="a smiling face emoji" if text else "", visible=text)
        source = gr.Textbox(label="Source prompt (inversion)", visible=text)
        target = gr.Textbox(label="Target prompt (inversion)", visible=text)
    shared["describing"] = [prompt, source]  # the prompts an example fills with what it shows (ui.layout._load_example)
    with gr.Accordion("Settings held fixed during the sweep", open=False), gr.Row():
        fixed = {
            "t0": slider(info, SDEditConfig, "t0"),
            "steps": slider(info, InversionConfig, "steps", maximum=500),
            "skip": slider(info, EditConfig, "skip", maximum=studio_default(info, InversionConfig, "steps") - 1),
            "eta": slider(info, InversionConfig, "eta"),
            "guidance_scale": slider(info, SDEditConfig, "guidance_scale", label="Guidance (SDEdit)", visible=text),
            "edit_guidance_scale": slider(info, EditConfig, "guidance_scale", label="Target guidance (text edit)", visible=text),
            "seed": seed_row(info, SDEditConfig),
        }
    follow_steps(fixed["steps"], fixed["skip"])
    # The galleries' labels are lines above them, not Gradio's label box, which lies over the pictures: on a phone,
    # three lines of it covered the thumbnails
    sweep_label = "Results (captions: setting · L2 · SSIM · realism · alignment); click one to open it with its recipe"
    gr.Markdown(f"**{sweep_label}**", elem_classes="ss-gallery-label")
    # fit_columns off: three results grew to fill the row, taller than the box, their captions out of sight
    gallery = gr.Gallery(label=sweep_label, show_label=False, columns=6, fit_columns=False, height=300, format="png",
                         object_fit="contain", elem_classes="ss-gallery", elem_id="ss-sweep")  # fmt: skip
    with gr.Row(equal_height=False):
        plot = gr.ScatterPlot(x="L2 to guide (lower = more faithful)", y="y", color="result", y_title="SSIM", height=360,
                              label="Realism against faithfulness · colour = seed, orange = opened result", scale=3,
                              elem_id="ss-plot")  # fmt: skip
        with gr.Column(scale=2):
            selected = gr.Image(label="Selected result", type="numpy", interactive=False, height=220, elem_id="ss-selected")
            selected_caption = gr.Markdown()
            again = gr.Button("↺ Edit this result", size="sm", elem_id="ss-selected-again")
            selected_files = gr.File(label="Selected result: PNG (recipe embedded), recipe JSON and inputs", file_count="multiple",
                                     interactive=False, height=170, elem_id="ss-selected-files")  # fmt: skip
    table = gr.Dataframe(headers=["value", "seed", "L2", "SSIM", "realism", "alignment", "gain"], label="Metrics", interactive=False)

    gr.Markdown("### Methods side by side\nSDEdit, inversion + edit and Imagic (text models, at its fast preset whatever the "
                "Imagic tab is set to; its optimisation takes minutes on a CPU, once per picture and text) on the canvas with the "
                "same seed and the settings held fixed above. The SDEdit prompt above is the target text; the source prompt "
                "describes the picture for the inversion.")  # fmt: skip
    cross_go = gr.Button("Compare methods")
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            cross_label = "Input, SDEdit, inversion + edit, Imagic; click one for its files"
            gr.Markdown(f"**{cross_label}**", elem_classes="ss-gallery-label")
            cross_gallery = gr.Gallery(label=cross_label, show_label=False, columns=4, height=260, format="png",
                                       elem_classes="ss-gallery", elem_id="ss-cross")  # fmt: skip
        cross_files = gr.File(label="Its PNG (recipe embedded), recipe JSON and inputs", file_count="multiple", interactive=False,
                              height=120, elem_id="ss-cross-files", scale=2)  # fmt: skip

    sweep_out = {"gallery": gallery, "plot": plot, "table": table, "status": out["status"], "session": out["session"],
                 "progress": out["progress"], "selected_image": selected, "selected_caption": selected_caption,
                 "selected_files": selected_files}  # fmt: skip
    go.click(None, js=scroll_to("ss-sweep"), queue=False, api_visibility="private")
    cross_go.click(None, js=scroll_to("ss-cross"), queue=False, api_visibility="private")
    sweep = model_run(
        go, compare.sweep, sweep_out,
        {"canvas": shared["canvas"], "session": shared["session"], "param": param, "n_values": n_values,
         "n_seeds": n_seeds, "prompt": prompt, "source_prompt": source, "target_prompt": target, **fixed},
        shared["session"], waiting, keeper, concurrency_id="model", show_progress="full", show_progress_on=gallery,
    )  # fmt: skip
    sel_out = [selected, selected_caption, plot, out["session"], gallery, selected_files]

    def as_list(up: dict) -> list:
        return [up.get("selected_image"), up.get("selected_caption"), up.get("plot"), up.get("session"),
                gr.Gallery(selected_index=up.get("index")), up.get("selected_files")]  # fmt: skip

    def on_plot(session, evt: gr.SelectData):
        return as_list(compare.select_point(session, evt)) if session.sweep else [gr.skip()] * len(sel_out)

    def on_gallery(session, evt: gr.SelectData):
        return as_list(compare.select_image(session, evt)) if session.sweep else [gr.skip()] * len(sel_out)

    again.click(as_toast(compare.selected_to_canvas), shared["session"], [shared["canvas"], out["status"]], show_progress="hidden",
                api_visibility="private")  # queued: a refusal's toast shows only for queued events
    plot.select(on_plot, shared["session"], sel_out, api_visibility="private")
    gallery.select(on_gallery, shared["session"], sel_out, api_visibility="private")

    def on_cross(session, evt: gr.SelectData):
        return compare.select_cross(session, evt)["cross_files"]

    cross_gallery.select(on_cross, shared["session"], cross_files, api_visibility="private")
    cross_out = {"cross_gallery": cross_gallery, "cross_files": cross_files, "status": out["status"], "progress": out["progress"], "session": out["session"]}
    cross = model_run(
        cross_go, compare.cross, cross_out,
        {"canvas": shared["canvas"], "session": shared["session"], "prompt": prompt, "source_prompt": source,
         "t0": fixed["t0"], "steps": fixed["steps"], "skip": fixed["skip"], "guidance_scale": fixed["guidance_scale"],
         "edit_guidance_scale": fixed["edit_guidance_scale"], "seed": fixed["seed"], "eta": fixed["eta"]},
        shared["session"], waiting, keeper, concurrency_id="model", show_progress="full", show_progress_on=cross_gallery,
    )  # fmt: skip
    return [sweep, cross]
