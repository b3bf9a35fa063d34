"""The last run's canvas and prompts, kept by the browser over a reload (ui/keep.py)."""

from __future__ import annotations

import numpy as np

from tests.fake_backend import FakeBackend
from ui.canvas import editor_to_canvas
from ui.keep import MAX_BYTES, RESTORED, Keeper, decode, encode


def painted() -> dict:
    """An editor value: a photo-like background, a stroke on the strokes layer, a mask on the mask layer."""
    rng = np.random.default_rng(0)
    background = np.concatenate([rng.integers(0, 256, (40, 48, 3), dtype=np.uint8), np.full((40, 48, 1), 255, np.uint8)], axis=2)
    strokes, mask = np.zeros_like(background), np.zeros_like(background)
    strokes[5:15, 5:30] = (200, 30, 30, 255)
    mask[20:30, 10:20] = 255
    return {"background": background, "layers": [strokes, mask], "composite": background.copy()}


def test_a_canvas_comes_back_as_the_guide_the_run_read_to_the_bit():
    import gradio as gr

    keeper = Keeper()
    with gr.Blocks():
        prompt, other = gr.Textbox(), gr.Textbox()
    names = keeper.register({"canvas": None, "prompt": prompt, "target_prompt": other, "t0": None})
    assert set(names) == {"prompt", "target_prompt"}  # the text inputs named *prompt, nothing else
    assert keeper.register({"prompt": prompt}) == {"prompt": names["prompt"]}  # a box two runs read is one box
    kept = keeper.value({"canvas": painted(), "prompt": "red apple", "target_prompt": "green apple"}, names)
    canvas, status, *boxes = keeper.restore(kept)
    expected = editor_to_canvas(painted()).guide.image  # background and strokes, as the run read them
    np.testing.assert_array_equal(canvas["background"][..., :3], expected)
    assert canvas["layers"] == []  # the editor makes its named layers ("strokes", "mask") itself
    assert status == RESTORED and boxes == ["red apple", "green apple"]


def test_nothing_kept_or_garbage_changes_nothing_and_an_empty_canvas_keeps_no_picture():
    keeper = Keeper()
    for kept in (None, {}, "x", {"canvas": "not base64!", "texts": ["a"]}, {"canvas": encode(np.zeros((4, 4, 3), np.uint8))[:10]}):
        canvas, status, *boxes = keeper.restore(kept)
        assert canvas == {"__type__": "update"} and status == {"__type__": "update"} and boxes == []
    assert Keeper.value({"canvas": None}, {})["canvas"] is None  # the run is refused; nothing to keep


def test_a_picture_too_large_for_the_browsers_storage_is_not_kept():
    noise = np.random.default_rng(1).integers(0, 256, (1024, 1024, 3), dtype=np.uint8)  # incompressible: about 3 MB
    assert encode(noise) is None
    small = noise[:64, :64]
    assert len(encode(small)) < MAX_BYTES and (decode(encode(small)) == small).all()


def test_the_page_restores_on_load_and_new_blank_canvas_forgets():
    from ui import build_ui

    demo = build_ui(FakeBackend())
    config = demo.get_config_file()
    state = next(c for c in config["components"] if c["type"] == "browserstate")
    loads = [d for d in config["dependencies"] if any(t[1] == "load" for t in d["targets"])]
    (restore,) = [d for d in loads if d["inputs"] == [state["id"]]]
    # Gradio's timer showed in the status line at every page load, "hidden" or not: on the invisible state only
    assert restore["show_progress"] == "hidden" and restore["show_progress_on"] == [state["id"]]
    writers = [d for d in config["dependencies"] if state["id"] in d["outputs"]]
    runs = [i for i, f in enumerate(demo.fns.values()) if f.name == "unless_stopped"]
    assert {i for i, d in enumerate(config["dependencies"]) if state["id"] in d["outputs"]} >= set(runs)  # every model run
    assert len(writers) == len(runs) + 1  # and New blank canvas
    (blank,) = [demo.fns[d["id"]] for d in writers if demo.fns[d["id"]].name != "unless_stopped"]
    assert blank.fn() == (None, {})  # {}: Gradio's BrowserState does not write None, and the old canvas came back
