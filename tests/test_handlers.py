"""The studio's handlers against the fake backend: streaming, recipes, the session cache, compare."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import types

import gradio as gr
import numpy as np
import pytest

from editing.images import load_mask
from editing.interface import EditConfig, Frame, InversionConfig, PromptReading, SDEditConfig
from editing.recipe import pixel_sha256
from editing.recipe import read_png_recipe as read_recipe
from tests.fake_backend import FakeBackend, FakeFullBackend
from ui.canvas import image_to_editor_value
from ui.compare import NO_REALISM, Compare, plot_frame, sweep_values
from ui.defaults import studio_default
from ui.handlers import Studio
from ui.state import Session


def painting(h: int = 40, w: int = 56) -> dict:
    rng = np.random.default_rng(1)
    return image_to_editor_value(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def with_mask(value: dict, box=(slice(5, 15), slice(5, 25))) -> dict:
    h, w = value["background"].shape[:2]
    strokes, mask = np.zeros((h, w, 4), np.uint8), np.zeros((h, w, 4), np.uint8)
    strokes[box] = (255, 0, 0, 255)
    mask[box + (3,)] = 255
    return {**value, "layers": [strokes, mask]}


SD = {"prompt": "a face", "t0": 0.5, "steps": 20, "guidance_scale": 3.0, "seed": 3, "preview_every": 2}
TE = {"source_prompt": "a cat", "target_prompt": "a dog", "steps": 10, "eta": 1.0, "source_guidance_scale": 3.5, "seed": 0,
      "skip": 3, "guidance_scale": 10.0}  # fmt: skip


def run(gen) -> list[dict]:
    return list(gen)


def test_import_ui_does_not_load_torch():
    code = "import sys, ui, ui.layout, ui.handlers, ui.canvas, ui.compare, ui.api; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=".")
    assert out.stdout.strip() == "False"


def test_sdedit_streams_previews_then_a_result_with_its_recipe():
    backend = FakeBackend()
    ups = run(Studio(backend).sdedit(canvas=painting(), **SD))
    previews = [u["output"] for u in ups[:-1] if "output" in u]
    assert len(previews) == 5  # 10 steps (t0 0.5 of 20), a preview every 2
    assert all("progress" in u for u in ups[1:-1])
    assert "step 10 / 10" in ups[-2]["progress"]
    last = ups[-1]
    assert last["output"].shape == (40, 56, 3)
    png, js, guide = last["files"]  # no mask painted: the guide is the only input
    recipe = read_recipe(png)
    with open(js) as f:
        assert recipe == json.load(f)
    assert recipe["method"] == "sdedit" and recipe["studio"]["mode"] == "sdedit" and recipe["prompts"] == {"prompt": "a face"}
    values = recipe["configs"]["sdedit"]["values"]
    assert values["t0"] == 0.5 and values["seed"] == 3 and recipe["model"]["id"] == "fake"
    assert recipe["inputs"] == {"guide": {"file": guide.rsplit("/", 1)[-1], "sha256": pixel_sha256(painting()["background"][..., :3])}}
    assert recipe["output"] == {"file": png.rsplit("/", 1)[-1], "sha256": pixel_sha256(last["output"]), "shape": [40, 56, 3]}
    from PIL import Image

    np.testing.assert_array_equal(np.asarray(Image.open(png)), last["output"])


def test_stream_toggle_shows_xt_or_predicted_x0():
    x0 = run(Studio(FakeBackend()).sdedit(canvas=painting(), show="predicted x0", **SD))
    xt = run(Studio(FakeBackend()).sdedit(canvas=painting(), show="current x_t", **SD))
    first = next(u["output"] for u in x0 if "output" in u)
    first_t = next(u["output"] for u in xt if "output" in u)
    assert not np.array_equal(first, first_t)
    np.testing.assert_array_equal(x0[-1]["output"], xt[-1]["output"])


@pytest.mark.parametrize("canvas", [None, {"background": None, "layers": [], "composite": None}])
def test_empty_canvas_gives_a_message_and_no_run(canvas):
    backend = FakeBackend()
    with pytest.raises(gr.Error, match="canvas is empty"):
        run(Studio(backend).sdedit(canvas=canvas, **SD))
    assert backend.calls["sdedit"] == 0


def test_bad_settings_become_user_messages():
    studio = Studio(FakeBackend())
    with pytest.raises(gr.Error, match=r"t0=1.5 is out of range"):
        run(studio.sdedit(canvas=painting(), **{**SD, "t0": 1.5}))
    with pytest.raises(gr.Error, match="T_skip"):
        run(studio.text_edit(canvas=painting(), **{**TE, "skip": 10}))
    with pytest.raises(gr.Error, match=r"seed=1.5 must be a whole number"):  # not run as seed 2 (or 1)
        run(studio.sdedit(canvas=painting(), **{**SD, "seed": 1.5}))
    with pytest.raises(gr.Error, match=r"seed=-3 is out of range"):  # named, not Gradio's "Value -3 is less than ..."
        run(studio.sdedit(canvas=painting(), **{**SD, "seed": -3.0}))
    with pytest.raises(gr.Error, match=r"seed is empty: type a number"):
        run(studio.sdedit(canvas=painting(), **{**SD, "seed": None}))
    assert read_recipe(run(studio.sdedit(canvas=painting(), **{**SD, "seed": 4.0}))[-1]["files"][0])["configs"]["sdedit"]["values"]["seed"] == 4
    with pytest.raises(gr.Error, match="target prompt"):
        run(studio.text_edit(canvas=painting(), **{**TE, "target_prompt": "  "}))


def test_methods_a_model_cannot_run_are_refused_before_anything_runs_and_compare_runs_the_others():
    """A VE model has no DDPM inversion: the text edit, colour edit and shift ran the canvas up to the engine's
    refusal, which the page showed as "Stopped: ... VE score model The downloads ..."; and Compare methods failed
    whole, its SDEdit result lost. An unconditional model's text edit only gave the picture back."""
    colour = {"prompt": "", "strength": 1.0, "t1": 0, "t2": 5, "skip": 0, "guidance_scale": 3.5,
              **{k: TE[k] for k in ("steps", "eta", "source_guidance_scale", "seed")}}  # fmt: skip
    shift = {**{k: TE[k] for k in ("steps", "eta", "source_guidance_scale", "seed", "skip", "guidance_scale")}, "prompt": "", "dx": 2, "dy": 0}
    ve, unconditional = FakeBackend(family="ve", conditional=False, kind="ve"), FakeBackend(family="pixel-ddpm", conditional=False)
    runs = {"text edit": lambda s: s.text_edit(canvas=painting(), **{**TE, "source_prompt": "", "target_prompt": ""}),
            "colour edit": lambda s: s.color_edit(canvas=with_mask(painting()), **colour),
            "shift": lambda s: s.shift(canvas=painting(), **shift)}  # fmt: skip
    for name, method in runs.items():
        with pytest.raises(gr.Error, match=rf"The {name} is not available for this model: it works through DDPM inversion, "
                                           r"which needs a VP \(DDPM-type\) model, and this one is a VE score model \(Stroke"):  # fmt: skip
            next(method(Studio(ve)))  # refused before its first update: nothing said "Running"
    assert not ve.calls
    with pytest.raises(gr.Error, match=r"The text edit is not available for this model: it reads no text \(an unconditional model\)"):
        next(runs["text edit"](Studio(unconditional)))
    for name in ("colour edit", "shift"):  # they need no text
        assert run(runs[name](Studio(unconditional)))[-1]["files"]
    for backend in (ve, unconditional):
        compare = Compare(Studio(backend))
        for param, shown in (("T_skip", "T_skip"), ("eta", "η")):
            with pytest.raises(gr.Error, match=rf"A {shown} sweep is not available for this model"):
                next(compare.sweep(canvas=painting(), param=param, n_values=2, n_seeds=1, prompt="", source_prompt="", target_prompt="",
                                   t0=0.5, steps=10, skip=3, eta=1.0, guidance_scale=3.0, seed=0))  # fmt: skip
        ups = run(compare.cross(canvas=painting(), prompt="", source_prompt="", t0=0.5, steps=10, skip=3, guidance_scale=3.0, seed=4))
        assert [c.split(" ")[0] for _, c in ups[-1]["cross_gallery"]] == ["input", "SDEdit"]
        assert ups[-1]["status"].startswith("Done: SDEdit on the same input with seed 4; click one for its files. Inversion + edit is not available")
        assert "Imagic is not available" in ups[-1]["status"]
    assert ve.calls["sdedit"] == 1 and not ve.calls["invert"] and unconditional.calls["invert"] == 2  # its colour edit and shift


def test_stroke_edit_needs_a_mask_and_changes_only_inside_it():
    backend = FakeBackend()
    studio = Studio(backend)
    with pytest.raises(gr.Error, match="mask"):
        run(studio.sdedit(canvas=painting(), mode="mask", **SD))
    v = with_mask(painting())
    out = run(studio.sdedit(canvas=v, mode="mask", **SD))[-1]["output"]
    guide = v["background"][..., :3].copy()
    guide[5:15, 5:25] = (255, 0, 0)
    outside = np.ones(guide.shape[:2], bool)
    outside[5:15, 5:25] = False
    np.testing.assert_array_equal(out[outside], guide[outside])
    assert not np.array_equal(out[~outside], guide[~outside])


def test_stroke_to_image_regenerates_the_whole_canvas_even_with_a_mask_painted():
    v = with_mask(painting())
    out = run(Studio(FakeBackend()).sdedit(canvas=v, **SD))[-1]
    guide = v["background"][..., :3].copy()
    guide[5:15, 5:25] = (255, 0, 0)
    outside = np.ones(guide.shape[:2], bool)
    outside[5:15, 5:25] = False
    assert not np.array_equal(out["output"][outside], guide[outside])  # not confined to the mask
    assert "mask layer is left out" in out["status"] and set(read_recipe(out["files"][0])["inputs"]) == {"guide"}


def test_a_text_edit_a_shift_and_imagic_say_they_leave_the_mask_out():
    """They edit the whole picture; a painted mask was ignored without a word (Stroke → image said so)."""
    studio, v = Studio(FakeFullBackend()), with_mask(painting())
    said = "The mask layer is left out here: the text edit changes the whole picture"
    assert said in run(studio.text_edit(canvas=v, session=Session(), **TE))[-1]["status"]
    shift = {k: TE[k] for k in ("steps", "eta", "source_guidance_scale", "seed", "skip", "guidance_scale")}
    assert "left out here: a shift" in run(studio.shift(canvas=v, prompt="a cat", dx=2, dy=0, **shift))[-1]["status"]
    imagic = run(studio.imagic(canvas=v, target_prompt="a dog", preset="fast", eta=0.7, guidance_scale=3.0, steps=10, seed=0))
    assert "left out here: Imagic" in imagic[-1]["status"]
    assert "left out" not in run(studio.text_edit(canvas=painting(), session=Session(), **TE))[-1]["status"]


def test_composite_pastes_the_patch_and_edits_its_footprint_only():
    v = painting()
    patch = np.full((8, 8, 3), 7, np.uint8)
    with pytest.raises(gr.Error, match="patch"):
        run(Studio(FakeBackend()).sdedit(canvas=v, mode="composite", **SD))
    out = run(Studio(FakeBackend()).sdedit(canvas=v, mode="composite", patch=patch, patch_x=0.5, patch_y=0.5, patch_scale=0.25, **SD))[-1]
    bg = v["background"][..., :3]
    changed = np.any(out["output"] != bg, axis=2)
    ys, xs = np.nonzero(changed)
    assert xs.min() >= 14 and xs.max() < 42 and ys.min() >= 6 and ys.max() < 34  # inside the 14 x 14 patch box
    recipe = read_recipe(out["files"][0])
    assert recipe["method"] == "sdedit" and recipe["studio"]["mode"] == "sdedit-composite"
    assert set(recipe["inputs"]) == {"guide", "mask"}  # the pasted picture and the patch's footprint
    assert load_mask(out["files"][3]).sum() == 14 * 14
    # an object on white (a JPEG, say): with the tab's "Cut out a plain background", only the object is blended in
    yy, xx = np.mgrid[:28, :28]
    disc = (yy - 14) ** 2 + (xx - 14) ** 2 <= 100
    on_white = np.full((28, 28, 3), 255, np.uint8)
    on_white[disc] = (200, 30, 30)
    out = run(Studio(FakeBackend()).sdedit(canvas=v, mode="composite", patch=on_white, patch_x=0.5, patch_y=0.5, patch_scale=0.5,
                                           cut_background=True, **SD))[-1]  # fmt: skip
    assert abs(int(load_mask(out["files"][3]).sum()) - int(disc.sum())) <= 0.05 * disc.sum()


@pytest.mark.parametrize(
    "over, message",
    [({"patch_x": 1.5}, "patch_x=1.5 is out of range: it goes from 0 to 1."),
     ({"patch_scale": 0}, "patch_scale=0 is out of range: it goes from 0.05 to 1."),
     ({"patch_y": "top"}, "patch_y='top' is not a number."),
     ({"patch": np.zeros((8, 8, 4), np.uint8)}, "The patch is transparent everywhere")],
)  # fmt: skip
def test_a_patch_placed_out_of_range_or_with_nothing_on_it_is_refused(over, message):
    """/composite takes the placement as numbers: out of range, paste_patch pasted nothing (or a sliver), and a
    transparent patch ran SDEdit on an empty mask, returning the background unchanged as a result."""
    backend = FakeBackend()
    kwargs = {"patch": np.full((8, 8, 3), 7, np.uint8), **over}
    with pytest.raises(gr.Error, match=re.escape(message)):
        run(Studio(backend).sdedit(canvas=painting(), mode="composite", **SD, **kwargs))
    assert backend.calls["sdedit"] == 0


def test_inversion_is_reused_only_when_target_side_settings_change():
    backend = FakeBackend()
    studio, session = Studio(backend), Session()
    v = painting()

    def edit(**over):
        return run(studio.text_edit(canvas=v, session=session, **{**TE, **over}))

    edit()
    assert backend.calls["invert"] == 1
    for over in ({"target_prompt": "a fox"}, {"skip": 5}, {"guidance_scale": 2.0}, {"preview_every": 3}):
        ups = edit(**over)
        assert any("Reusing" in str(u.get("status")) for u in ups)
    assert backend.calls["invert"] == 1 and backend.calls["edit"] == 5
    for n, over in enumerate(({"source_prompt": "a lynx"}, {"steps": 12}, {"eta": 0.5}, {"source_guidance_scale": 1.0}, {"seed": 9}), 2):
        edit(**over)
        assert backend.calls["invert"] == n, over
    run(studio.text_edit(canvas=painting(40, 57), session=session, **TE))  # a new image
    assert backend.calls["invert"] == 7


def test_sessions_never_share_inversions():
    backend = FakeBackend()
    studio, a, b = Studio(backend), Session(), Session()
    run(studio.text_edit(canvas=painting(), session=a, **TE))
    run(studio.text_edit(canvas=painting(), session=b, **TE))
    assert backend.calls["invert"] == 2
    assert a.inversion is not b.inversion


def test_colour_edit_inverts_the_photo_and_recolours_the_painted_region():
    backend = FakeBackend()
    v = with_mask(painting())
    v["layers"] = v["layers"][:1]  # strokes only: the painted region is the colour mask
    args = {k: TE[k] for k in ("steps", "eta", "source_guidance_scale", "seed")}
    ups = run(Studio(backend).color_edit(canvas=v, prompt="", strength=1.0, t1=0, t2=5, skip=0, guidance_scale=3.5, **args))
    out = ups[-1]["output"]
    assert (out[5:15, 5:25] == (255, 0, 0)).all()
    np.testing.assert_array_equal(out[20:], v["background"][20:, :, :3])
    with pytest.raises(gr.Error, match="Paint the new colour"):
        run(Studio(backend).color_edit(canvas=painting(), prompt="", strength=1.0, t1=0, t2=5, skip=0, guidance_scale=3.5, **args))
    assert backend.last_color_config.mode == "x0"  # the default push
    run(Studio(backend).color_edit(canvas=v, prompt="", strength=1.0, t1=0, t2=5, skip=0, guidance_scale=3.5, mode="noise", alpha=0.2, **args))
    assert (backend.last_color_config.mode, backend.last_color_config.alpha) == ("noise", 0.2)
    with pytest.raises(gr.Error, match="alpha"):
        run(Studio(backend).color_edit(canvas=v, prompt="", strength=1.0, t1=0, t2=5, skip=0, guidance_scale=3.5, mode="noise", alpha=50, **args))


def test_colour_outside_a_painted_mask_is_said_to_be_left_out():
    v = with_mask(painting())  # strokes and mask over the same box
    strokes = v["layers"][0].copy()
    strokes[20:30, 5:25] = (0, 255, 0, 255)  # as much colour again, outside the mask
    v["layers"] = [strokes, v["layers"][1]]
    args = {k: TE[k] for k in ("steps", "eta", "source_guidance_scale", "seed")}
    ups = run(Studio(FakeBackend()).color_edit(canvas=v, prompt="", strength=1.0, t1=0, t2=5, skip=0, guidance_scale=3.5, **args))
    assert "50% of the new colour lies outside the mask layer's region and is left out" in ups[-1]["status"]
    inside = run(Studio(FakeBackend()).color_edit(canvas=with_mask(painting()), prompt="", strength=1.0, t1=0, t2=5, skip=0,
                                                  guidance_scale=3.5, **args))  # fmt: skip
    assert "left out" not in inside[-1]["status"]


def test_shift_rolls_the_image():
    v = painting()
    args = {k: TE[k] for k in ("steps", "eta", "source_guidance_scale", "seed")}
    out = run(Studio(FakeBackend()).shift(canvas=v, prompt="", dx=3, dy=-2, skip=0, guidance_scale=3.5, **args))[-1]["output"]
    np.testing.assert_array_equal(out, np.roll(v["background"][..., :3], (-2, 3), axis=(0, 1)))
    backend = FakeBackend()
    with pytest.raises(gr.Error, match="both 0"):  # a shift by nothing is refused before any model call
        run(Studio(backend).shift(canvas=v, prompt="", dx=0, dy=0, skip=0, guidance_scale=3.5, **args))
    assert not backend.calls


def test_sliders_start_at_the_config_defaults_or_the_family_table():
    info = FakeBackend().info()
    assert studio_default(info, SDEditConfig, "t0") == SDEditConfig().t0
    assert studio_default(info, EditConfig, "guidance_scale") == EditConfig().guidance_scale
    assert studio_default(info, InversionConfig, "steps") == 50  # pixel-text override
    other = FakeBackend(family="pixel-ddpm").info()
    assert studio_default(other, InversionConfig, "steps") == InversionConfig().steps


@pytest.mark.parametrize("backend_cls", [FakeBackend, FakeFullBackend])
def test_sweep_gives_one_result_per_value_and_seed_with_metrics(backend_cls):
    backend = backend_cls()
    compare, session = Compare(Studio(backend)), Session()
    ups = run(compare.sweep(canvas=painting(), param="t0", n_values=4, n_seeds=2, prompt="", source_prompt="", target_prompt="x",
                            t0=0.5, steps=10, skip=2, eta=1.0, guidance_scale=3.0, seed=0, session=session))  # fmt: skip
    items = session.sweep
    assert [(it.value, it.seed) for it in items] == [(v, s) for s in (0, 1) for v in sweep_values("t0", 4, 10)]
    l2 = [it.metrics["l2"] for it in items[:4]]
    assert l2 == sorted(l2) and l2[0] < l2[-1]  # the fake blends further from the guide as t0 grows
    assert all(NO_REALISM in it.label for it in items)
    gallery = [u for u in ups if "gallery" in u][-1]["gallery"]
    assert len(gallery) == 8
    # the previous sweep's opened result is cleared first: its picture and files are not this sweep's
    assert ups[0]["selected_image"] is None and ups[0]["selected_files"] is None and ups[0]["selected_caption"] == ""
    assert backend.calls["sdedit_batch"] == (2 if backend_cls is FakeFullBackend else 0)  # one batch per seed
    df = plot_frame(items)
    points = df[df["index"] >= 0]
    assert len(points) == 8 and (points["y"] == [it.metrics["ssim"] for it in items]).all()
    assert sorted(df[df["index"] < 0]["result"]) == ["seed 0", "seed 1", "selected"]  # the plot's colour domain, fixed up front


@pytest.mark.parametrize("backend_cls", [FakeBackend, FakeFullBackend])
def test_sweep_over_t_skip_inverts_once(backend_cls):
    """One inversion per seed; with `edit_batch` its T_skip values run as one batch, else one edit each."""
    backend = backend_cls()
    compare, session = Compare(Studio(backend)), Session()
    ups = run(compare.sweep(canvas=painting(), param="T_skip", n_values=3, n_seeds=2, prompt="", source_prompt="a",
                            target_prompt="b", t0=0.5, steps=10, skip=2, eta=1.0, guidance_scale=3.0, seed=0, session=session))  # fmt: skip
    batched = backend_cls is FakeFullBackend
    assert any(": inverting" in u.get("progress", "") for u in ups) and not any(">Inverting" in u.get("progress", "") for u in ups)
    assert backend.calls["invert"] == 2 and backend.calls["edit"] == (0 if batched else 6)
    assert backend.calls["edit_batch"] == (2 if batched else 0)
    assert [(it.value, it.seed) for it in session.sweep] == [(v, s) for s in (0, 1) for v in (0, 4, 7)]
    assert [it.run.configs["edit"].skip for it in session.sweep] == [0, 4, 7] * 2
    assert [it.run.configs["inversion"].seed for it in session.sweep] == [0, 0, 0, 1, 1, 1]
    # every inversion says whose it is (seed 1's said plain "Inverting")
    assert any("Sweep, seed 1: inverting" in u.get("progress", "") for u in ups) if batched else True


@pytest.mark.parametrize("backend_cls", [FakeBackend, FakeFullBackend])
def test_sweep_over_eta_inverts_each_eta_once(backend_cls):
    """An eta sweep: with `invert_etas` and `edit_batch`, one shared inversion call and one edit batch per
    seed; else one inversion and one edit per value. The recipes are the same either way."""
    backend = backend_cls()
    compare, session = Compare(Studio(backend)), Session()
    run(compare.sweep(canvas=painting(), param="eta", n_values=3, n_seeds=2, prompt="", source_prompt="a", target_prompt="b",
                      t0=0.5, steps=10, skip=2, eta=1.0, guidance_scale=3.0, seed=0, session=session))  # fmt: skip
    batched = backend_cls is FakeFullBackend
    assert backend.calls["invert_etas"] == (2 if batched else 0) and backend.calls["invert"] == (0 if batched else 6)
    assert backend.calls["edit_batch"] == (2 if batched else 0) and backend.calls["edit"] == (0 if batched else 6)
    etas = sweep_values("eta", 3, 10)
    assert [(it.value, it.seed) for it in session.sweep] == [(v, s) for s in (0, 1) for v in etas]
    assert [it.run.configs["inversion"].eta for it in session.sweep] == list(etas) * 2
    assert {it.run.configs["edit"].skip for it in session.sweep} == {2}


@pytest.mark.parametrize(("change", "message"), [
    ({"n_values": 0}, r"n_values=0 is out of range; allowed: \[1, 8\]"),
    ({"n_values": 50}, r"n_values=50 is out of range"),
    ({"n_seeds": 5}, r"n_seeds=5 is out of range; allowed: \[1, 4\]"),
    ({"param": "T_skip", "target_prompt": " "}, "Write a target prompt: a T_skip or η sweep"),
    ({"param": "eta", "target_prompt": ""}, "Write a target prompt: a T_skip or η sweep"),
])  # fmt: skip
def test_a_bad_sweep_is_refused_in_one_sentence_and_changes_nothing(change, message):
    """The API's /sweep takes any number: out of the Compare tab's range, or a text-edit sweep with no
    target, it says so before the model runs, and the last sweep's results stay."""
    backend = FakeBackend()
    compare, session = Compare(Studio(backend)), Session()
    args = {"canvas": painting(), "param": "t0", "n_values": 2, "n_seeds": 1, "prompt": "", "source_prompt": "a", "target_prompt": "b",
            "t0": 0.5, "steps": 10, "skip": 2, "eta": 1.0, "guidance_scale": 1.5, "seed": 0, "session": session}  # fmt: skip
    run(compare.sweep(**args))
    before, calls = list(session.sweep), dict(backend.calls)
    with pytest.raises(gr.Error, match=message):
        run(compare.sweep(**{**args, **change}))
    assert session.sweep == before and dict(backend.calls) == calls


def test_edit_sweeps_and_compare_methods_take_the_edit_guidance_not_sdedits():
    import dataclasses

    from editing.interface import EditConfig

    compare, session = Compare(Studio(FakeBackend())), Session()
    args = {"canvas": painting(), "n_values": 2, "n_seeds": 1, "prompt": "", "source_prompt": "a", "target_prompt": "b", "t0": 0.5,
            "steps": 10, "skip": 2, "eta": 1.0, "guidance_scale": 1.5, "seed": 0, "session": session}  # fmt: skip
    run(compare.sweep(param="T_skip", edit_guidance_scale=6.0, **args))
    assert [it.run.configs["edit"].guidance_scale for it in session.sweep] == [6.0, 6.0]  # the slider's, not SDEdit's 1.5
    run(compare.sweep(param="eta", **args))
    assert [it.run.configs["edit"].guidance_scale for it in session.sweep] == [EditConfig().guidance_scale] * 2  # the default
    backend = FakeBackend()
    tuned = dataclasses.replace(backend.info(), recommended_edit_guidance_scale=4.0)
    backend.info = lambda: tuned
    compare, session = Compare(Studio(backend)), Session()
    run(compare.cross(canvas=painting(), prompt="a dog", source_prompt="a cat", t0=0.5, steps=10, skip=3, guidance_scale=1.5, seed=4,
                      session=session))  # fmt: skip
    edit = next(it for it in session.cross if it.run.method == "edit")
    assert edit.run.configs["edit"].guidance_scale == 4.0  # the model's own edit guidance (was the paper's 15 always)
    assert next(it for it in session.cross if it.run.method == "sdedit").run.configs["sdedit"].guidance_scale == 1.5


def test_gallery_selection_highlights_its_point_and_plot_range_selects_an_image():
    compare, session = Compare(Studio(FakeBackend())), Session()
    run(compare.sweep(canvas=painting(), param="t0", n_values=3, n_seeds=1, prompt="", source_prompt="", target_prompt="x",
                      t0=0.5, steps=10, skip=2, eta=1.0, guidance_scale=3.0, seed=0, session=session))  # fmt: skip
    up = compare.select_image(session, gr.SelectData(None, {"index": 2, "value": None}))
    assert session.selected == 2 and up["index"] == 2
    assert list(up["plot_df"].query("index >= 0")["result"]) == ["seed 0", "seed 0", "selected"]
    up = compare.select_image(session, gr.SelectData(None, {"index": 0, "value": None}))
    assert list(up["plot_df"].query("index >= 0")["index"]) == [1, 2, 0]  # the selected point is drawn last
    target = session.sweep[1].metrics["l2"]
    up = compare.select_point(session, gr.SelectData(None, {"index": [target - 1e-6, target + 1e-6], "value": None}))
    assert up["index"] == 1
    np.testing.assert_array_equal(up["selected_image"], session.sweep[1].image)


def test_more_faithful_and_more_realistic_bisect_t0():
    backend = FakeBackend()
    compare, session = Compare(Studio(backend)), Session()
    args = {k: v for k, v in SD.items() if k != "t0"}

    def click(direction, t0):
        ups = run(compare.search(direction=direction, canvas=painting(), t0=t0, session=session, **args))
        assert [u for u in ups if "t0" in u] == [ups[-1]]  # the slider moves with the result, not before it
        return ups[-1]["t0"]

    assert click("faithful", 0.5) == 0.25  # [0, 0.5]
    assert click("realistic", 0.25) == 0.375  # [0.25, 0.5]
    assert click("realistic", 0.375) == 0.438  # [0.375, 0.5]
    assert session.search == (0.375, 0.5)
    assert backend.calls["sdedit"] == 3
    ups = run(compare.search(direction="faithful", canvas=painting(41, 56), t0=0.5, session=session, **args))
    assert ups[-1]["t0"] == 0.25  # a new drawing restarts the search from [0, 1]
    # a search stopped before its result (Stop cancels the generator) leaves the slider and the interval alone
    before = session.search
    gen = compare.search(direction="faithful", canvas=painting(41, 56), t0=0.25, session=session, **args)
    assert all("t0" not in next(gen) for _ in range(3))
    gen.close()
    assert session.search == before


def test_cross_method_runs_sdedit_and_inversion_on_the_same_seed():
    backend = FakeBackend()
    ups = run(Compare(Studio(backend)).cross(canvas=painting(), prompt="a dog", source_prompt="a cat", t0=0.5, steps=10, skip=3,
                                             guidance_scale=3.0, seed=4))  # fmt: skip
    gallery = ups[-1]["cross_gallery"]
    assert [c.split(" ")[0] for _, c in gallery] == ["input", "SDEdit", "Inversion"]
    assert backend.calls["sdedit"] == 1 and backend.calls["invert"] == 1 and backend.calls["edit"] == 1
    assert "Imagic is not available for this model: it needs a text-conditioned model" in ups[-1]["status"]
    compare = Compare(Studio(FakeBackend()))
    session = Session()
    run(compare.cross(canvas=painting(), prompt="a dog", source_prompt="a cat", t0=0.5, steps=10, skip=3, guidance_scale=3.0,
                      seed=4, eta=0.5, session=session))  # fmt: skip
    assert session.cross[1].run.configs["inversion"].eta == 0.5  # the eta held fixed in the tab, as its recipe records
    # A painted mask does not confine SDEdit here: the three methods all act on the whole picture.
    v = with_mask(painting())
    sd = run(Compare(Studio(FakeBackend())).cross(canvas=v, prompt="a dog", source_prompt="a cat", t0=0.5, steps=10, skip=3,
                                                  guidance_scale=3.0, seed=4))[-1]["cross_gallery"][1][0]  # fmt: skip
    outside = np.ones(sd.shape[:2], bool)
    outside[5:15, 5:25] = False
    assert not np.array_equal(sd[outside], v["background"][..., :3][outside])


def test_cross_method_adds_imagic_when_the_backend_has_it():
    backend = FakeFullBackend()
    ups = run(Compare(Studio(backend)).cross(canvas=painting(), prompt="a dog", source_prompt="a cat", t0=0.5, steps=10, skip=3,
                                             guidance_scale=3.0, seed=4))  # fmt: skip
    assert [c.split(" ")[0] for _, c in ups[-1]["cross_gallery"]] == ["input", "SDEdit", "Inversion", "Imagic"]
    assert backend.calls["imagic"] == 1
    backend = FakeFullBackend()
    with pytest.raises(gr.Error, match="Write a prompt"):  # refused before SDEdit and the inversion run, not after
        run(Compare(Studio(backend)).cross(canvas=painting(), prompt=" ", source_prompt="a cat", t0=0.5, steps=10, skip=3,
                                           guidance_scale=3.0, seed=4))  # fmt: skip
    assert not backend.calls


IM = {"target_prompt": "a dog", "preset": "fast", "eta": 0.7, "guidance_scale": 3.0, "steps": 6, "seed": 2, "embedding_steps": 3,
      "finetune_steps": 2}  # fmt: skip


def test_imagic_streams_its_stages_and_saves_a_recipe():
    ups = run(Studio(FakeFullBackend()).imagic(canvas=painting(), **IM))
    progress = " ".join(u.get("progress", "") for u in ups)
    assert "optimising the text embedding" in progress and "fine-tuning the model" in progress and "loss" in progress
    recipe = read_recipe(ups[-1]["files"][0])
    values = recipe["configs"]["imagic"]["values"]
    assert recipe["method"] == "imagic" and values["embedding_steps"] == 3 and list(recipe["inputs"]) == ["image"]
    assert values["eta"] == 0.7 and ups[-1]["output"].shape == (40, 56, 3)


def test_imagic_says_when_the_model_cannot_do_it():
    with pytest.raises(gr.Error, match="text-conditioned"):
        run(Studio(FakeBackend()).imagic(canvas=painting(), **IM))


def test_sweep_over_eta_inverts_once_per_value():
    backend = FakeBackend()
    compare, session = Compare(Studio(backend)), Session()
    run(compare.sweep(canvas=painting(), param="eta", n_values=3, n_seeds=1, prompt="", source_prompt="a", target_prompt="b",
                      t0=0.5, steps=10, skip=2, eta=1.0, guidance_scale=3.0, seed=0, session=session))  # fmt: skip
    assert backend.calls["invert"] == 3 and [it.value for it in session.sweep] == [0.1, 0.55, 1.0]


def test_stop_cancels_every_run_and_ui_events_stay_off_the_api():
    from tests.fake_backend import FakeFullBackend as Full
    from ui import build_ui

    deps = build_ui(Full()).get_config_file()["dependencies"]
    runs = {d["id"] for d in deps if d["api_name"].startswith("unless_stopped")}  # the model-running handlers (model_run's)
    stops = [d for d in deps if d["cancels"]]
    assert len(runs) == 11  # 6 method tabs, 2 bisection buttons, Imagic, sweep, methods side by side
    assert len(stops) == 1 and set(stops[0]["cancels"]) == runs
    public = {d["api_name"] for d in deps if d["api_visibility"] == "public"}
    assert public == {"sdedit", "composite", "edit", "color", "shift", "imagic", "sweep"}


def test_settings_the_engine_refuses_become_messages():
    class Refusing(FakeBackend):
        def invert(self, image, source_prompt, config):
            raise ValueError("the VE model cannot be inverted; allowed: VP models")

    with pytest.raises(gr.Error, match="cannot be inverted"):
        run(Studio(Refusing()).text_edit(canvas=painting(), **TE))


def test_header_shows_the_models_status_only_when_it_has_one():
    import dataclasses

    from ui import build_ui

    def header(backend) -> str:
        md = [c["props"].get("value") or "" for c in build_ui(backend).get_config_file()["components"] if c["type"] == "markdown"]
        return next(v for v in md if v.startswith("## Stroke Studio"))

    plain = FakeBackend()
    assert "Status:" not in header(plain)
    interim = FakeBackend()
    interim._info = dataclasses.replace(interim._info, status="interim, CPU-trained")
    assert "Status: *interim, CPU-trained*" in header(interim)


def test_the_page_offers_only_what_the_model_can_run_and_sends_no_prompt_to_a_model_that_reads_none():
    """A VE model's Text edit, Colour edit and Shift tabs were offered and refused when run; a studio on an
    unconditional model sent its hidden prompt boxes' defaults to the engine (a warning in the server's log
    for every run, and prompts in recipes that the model never read)."""
    import dataclasses

    from ui import build_ui

    def page(backend) -> tuple[list[str], list[dict]]:
        demo = build_ui(backend)
        (load,) = [f for f in demo.fns.values() if f.name == "load_example"]
        out = load.fn(types.SimpleNamespace(index=0))  # the apple: the canvas, and "red apple" in each describing prompt
        values = out if len(load.outputs) > 1 else (out,)  # one output takes a tuple as its value: that failed
        for component, value in zip(load.outputs, values, strict=True):
            component.postprocess(value)
        comps = demo.get_config_file()["components"]
        return [c["props"].get("value") or "" for c in comps if c["type"] == "markdown"], comps

    ve_md, ve = page(FakeBackend(family="ve", conditional=False, kind="ve"))
    for name in ("text edit", "colour edit", "shift"):
        assert any(m.startswith(f"The {name} is not available for this model: it works through DDPM inversion") for m in ve_md), name
    un_md, unconditional = page(FakeBackend(family="pixel-ddpm", conditional=False))
    assert any(m.startswith("The text edit is not available for this model: it reads no text") for m in un_md)
    assert not any(m.startswith(("The colour edit is not", "The shift is not")) for m in un_md)
    for comps in (ve, unconditional):
        sweeps = next(c for c in comps if c["props"].get("label") == "Sweep")
        assert [v for _, v in sweeps["props"]["choices"]] == ["t0"]  # T_skip and η sweep a text edit
        boxes = [c["props"] for c in comps if c["type"] == "textbox" and "rompt" in (c["props"].get("label") or "")]
        assert boxes and all(not b.get("value") for b in boxes if not b["visible"])
    _, text = page(FakeBackend())
    sweeps = next(c for c in text if c["props"].get("label") == "Sweep")
    assert [v for _, v in sweeps["props"]["choices"]] == ["t0", "T_skip", "eta"]
    latent = FakeBackend(family="latent-sd")
    latent._info = dataclasses.replace(latent._info, resolution=512, model_side=64)
    labels = {c["props"].get("label") for c in page(latent)[1]}
    assert {"Shift x (latent cells of 8 px)", "Shift y (latent cells of 8 px)"} <= labels and "Shift x (px)" in {
        c["props"].get("label") for c in text}  # fmt: skip


def test_sdedit_guidance_starts_at_the_models_recommended_scale():
    import dataclasses

    from editing.interface import ColorEditConfig, EditConfig, SDEditConfig, ShiftConfig
    from ui.defaults import studio_default

    info = FakeBackend().info()
    assert info.recommended_guidance_scale is None
    assert studio_default(info, SDEditConfig, "guidance_scale") == SDEditConfig().guidance_scale  # the paper default
    tuned = dataclasses.replace(info, recommended_guidance_scale=2.0)
    assert studio_default(tuned, SDEditConfig, "guidance_scale") == 2.0
    # the recommendation is for sampling; text edits keep their own (much higher) default
    assert studio_default(tuned, EditConfig, "guidance_scale") == EditConfig().guidance_scale
    # unless the model names one for text edits too (the emoji model: docs/edit)
    edits = dataclasses.replace(tuned, recommended_edit_guidance_scale=4.0)
    assert studio_default(edits, EditConfig, "guidance_scale") == 4.0
    assert studio_default(edits, SDEditConfig, "guidance_scale") == 2.0
    # text edits' T_skip: the paper's ratio (18 of the studio's 50 steps) unless the model names its own
    # fraction (the emoji model's 0.2, docs/edit): then that fraction of the studio's steps, in any family
    assert studio_default(dataclasses.replace(info, family="pixel-text"), EditConfig, "skip") == 18
    assert studio_default(dataclasses.replace(info, family="latent-sd"), EditConfig, "skip") == 18
    own = dataclasses.replace(info, family="pixel-text", recommended_edit_skip_fraction=0.2)
    assert studio_default(own, EditConfig, "skip") == 10
    assert studio_default(dataclasses.replace(own, family="latent-sd"), EditConfig, "skip") == 10
    assert studio_default(dataclasses.replace(own, family="pixel-ddpm"), EditConfig, "skip") == 20  # 100 steps there
    assert studio_default(own, ColorEditConfig, "skip") == ColorEditConfig().skip  # named for text edits only
    assert studio_default(own, ShiftConfig, "skip") == 0  # the paper's shift starts from pure noise
    # a model trained on centred pictures names a later start for shifts (the emoji model: docs/shift)
    assert studio_default(dataclasses.replace(own, recommended_shift_skip_fraction=0.3), ShiftConfig, "skip") == 15
    assert studio_default(dataclasses.replace(own, recommended_edit_skip_fraction=0.999), EditConfig, "skip") == 49  # < steps


def test_step_indexed_sliders_follow_the_step_count():
    from ui.widgets import within_steps

    skip, t2 = within_steps(100, 5 / 50, 18 / 20)
    assert skip["maximum"] == 99 and skip["value"] == 10  # T_skip 5 of 50 -> 10 of 100: same place in the schedule
    assert t2["value"] == 90
    assert within_steps(50, 5 / 50)[0] == {"__type__": "update", "maximum": 49, "value": 5}  # back: exact
    assert within_steps(20, 49 / 50)[0]["value"] == 19  # never beyond the last step
    assert within_steps(1, 0.5)[0] == {"__type__": "update", "maximum": 0, "value": 0}
    assert [u["value"] for u in within_steps(37, 0.1, 0.0)] == [4, 0]


def test_step_indexed_slider_keeps_its_fraction_through_a_drag():
    """The studio's Text edit tab: the steps slider dragged 50 -> 51 -> ... -> 100 one step at a
    time must end at T_skip 10, not at 5 (which re-deriving the fraction from the rounded value at
    every step would give), and a value the user sets re-anchors it."""
    import gradio as gr

    from ui.widgets import follow_steps

    with gr.Blocks() as demo:
        steps = gr.Slider(1, 500, value=50, step=1)
        skip = gr.Slider(0, 49, value=5, step=1)
        follow_steps(steps, skip)
    by_first_input = {fn.inputs[0]._id: fn.fn for fn in demo.fns.values()}
    follow, remember = by_first_input[steps._id], by_first_input[skip._id]
    anchors = [5 / 50]
    for n in range(51, 101):
        value = follow(n, anchors)["value"]
    assert value == 10
    anchors = remember(7, 100, anchors)
    assert follow(50, anchors)["value"] == 4  # 7 of 100 -> 3.5 of 50, rounded half up


def test_a_typed_step_past_the_sliders_end_is_taken_as_the_slider_shows_it():
    """T_skip 999 typed into a 0..49 slider: Gradio's own range check failed the event (a traceback in
    the log, a 500 in the browser) and the share was never remembered, so 100 steps then gave T_skip 0."""
    import gradio as gr

    from ui.widgets import follow_steps

    with gr.Blocks() as demo:
        steps = gr.Slider(1, 500, value=50, step=1)
        skip = gr.Slider(0, 49, value=5, step=1)
        follow_steps(steps, skip)
    fns = {fn.inputs[0]._id: fn for fn in demo.fns.values()}
    assert not fns[skip._id].preprocess and not fns[steps._id].preprocess  # raw values: no Gradio range check
    follow, remember = fns[steps._id].fn, fns[skip._id].fn
    anchors = remember(999, 50, [0.1])
    assert anchors == [49 / 50] and follow(100, anchors)["value"] == 98
    assert remember(-4, 50, anchors) == [0.0] and remember("abc", 50, anchors) == anchors
    assert follow(9000, [0.5])["value"] == 250  # steps past their own end: 500
    assert isinstance(follow("", [0.5]), type(gr.skip()))


def test_progress_keeps_the_last_loss_between_previews():
    """Imagic reads its loss back at the previews only; the progress line keeps showing the last one
    until the next, and forgets it when the stage changes."""
    from editing.interface import Frame
    from ui.handlers import stream

    frames = [Frame(1, 4, "optimize"), Frame(2, 4, "optimize", loss=0.5), Frame(3, 4, "optimize"),
              Frame(1, 4, "finetune"), Frame(2, 4, "finetune", loss=0.25)]  # fmt: skip
    texts = [up["progress"] for _, up in stream(iter(frames), "predicted x0", "Imagic")]
    assert "loss" not in texts[0] and "(loss 0.5000)" in texts[1] and "(loss 0.5000)" in texts[2]
    assert "loss" not in texts[3] and "(loss 0.2500)" in texts[4]


def test_stop_says_where_the_run_stopped_and_leaves_a_finished_run_alone():
    from ui.handlers import STOPPED, progress_html, stopped

    progress, status = stopped(progress_html(143, 500, "SDEdit, denoising"), "Running…")
    assert "Stopped: SDEdit, denoising, at step 143 / 500" in progress and status == STOPPED
    # an Imagic stage, whose status is the notices rather than "Running"
    assert stopped(progress_html(26, 500, "Imagic, optimising the text embedding (loss 0.0070)"), "Downscaled.")[1] == STOPPED
    # nothing was going: the last result's progress and status stay
    for idle in (progress_html(25, 25, "SDEdit, done"), '<div class="ss-progress"><span>Ready</span></div>'):
        assert all(isinstance(u, type(gr.skip())) for u in stopped(idle, "Done: 256x256 PNG with its recipe."))


def test_the_inversions_progress_does_not_repeat_its_stage():
    from ui.handlers import stream

    frames = [Frame(1, 4, "invert"), Frame(2, 4, "denoise")]
    texts = [up["progress"] for _, up in stream(iter(frames), "predicted x0", "Inverting")]
    assert "<span>Inverting: step 1 / 4</span>" in texts[0] and "Inverting, denoising: step 2 / 4" in texts[1]


def test_edit_this_result_puts_the_finished_result_on_the_canvas_for_the_next_edit():
    from ui.handlers import result_to_canvas

    backend, session = FakeBackend(), Session()
    studio = Studio(backend)
    with pytest.raises(gr.Error, match="No finished result yet"):
        result_to_canvas(session)
    ups = run(studio.sdedit(canvas=painting(), session=session, **SD))
    assert session.result is ups[-1]["output"]  # the result, not a preview
    value, status = result_to_canvas(session)
    assert status.startswith("The result is now the canvas")
    np.testing.assert_array_equal(value["background"][..., :3], ups[-1]["output"])
    assert value["layers"] == [] and (value["background"][..., 3] == 255).all()
    # the next edit starts from it: its recipe's guide is the first result
    second = run(studio.sdedit(canvas=with_mask(value), session=session, mode="mask", **SD))[-1]
    expected = ups[-1]["output"].copy()
    expected[5:15, 5:25] = (255, 0, 0)  # with_mask's strokes over the first result
    assert read_recipe(second["files"][0])["inputs"]["guide"]["sha256"] == pixel_sha256(expected)
    assert session.result is second["output"]

    # a run stopped after its first preview: the panel shows the preview, so the last finished result is
    # not what "Edit this result" takes (it was, silently, another picture than the one on screen)
    from ui.widgets import forget_covered_result

    updates = studio.sdedit(canvas=painting(), session=session, **SD)
    for up in updates:  # as the page's run does (ui.widgets.model_run), update by update
        forget_covered_result(session, up.get("output"))
        if "output" in up:
            updates.close()  # Stop, at its first preview
            break
    with pytest.raises(gr.Error, match="No finished result yet"):
        result_to_canvas(session)
    finished = []
    for up in studio.sdedit(canvas=painting(), session=session, **SD):
        forget_covered_result(session, up.get("output"))
        finished.append(up)
    assert session.result is finished[-1]["output"]  # run to the end, it is the one shown

    compare = Compare(studio)
    with pytest.raises(gr.Error, match="Open a result first"):
        compare.selected_to_canvas(session)
    run(compare.sweep(canvas=painting(), param="t0", n_values=3, n_seeds=1, prompt="", source_prompt="", target_prompt="x",
                      t0=0.5, steps=10, skip=2, eta=1.0, guidance_scale=3.0, seed=0, session=session))  # fmt: skip
    with pytest.raises(gr.Error, match="Open a result first"):  # a new sweep clears the opened result
        compare.selected_to_canvas(session)
    compare.select_image(session, gr.SelectData(None, {"index": 1, "value": None}))
    value, _ = compare.selected_to_canvas(session)
    np.testing.assert_array_equal(value["background"][..., :3], session.sweep[1].image)


def test_a_run_still_waiting_when_stop_is_pressed_does_nothing_when_its_turn_comes():
    """Gradio's cancel of a queued run can lose the race with the queue starting it; the run then finds
    the session's Stop count moved past its ticket and yields nothing, so "Stopped" stays on the page."""
    from ui import build_ui
    from ui.handlers import count_stop

    demo = build_ui(FakeBackend())
    fns = [f for f in demo.fns.values() if f.name == "unless_stopped"]
    generate = fns[0]  # the first model run built: Stroke → image's Generate
    session = Session()
    kwargs = {"canvas": painting(), "show": "predicted x0", "session": session, **SD, "repeats": 1, "sampler": "ddpm"}
    ticket = session.stops
    count_stop(session)  # Stop pressed while the run waited
    (only,) = generate.fn(ticket, **kwargs)  # only the waiting sign is cleared
    assert list(only.values()) == [""]
    ups = list(generate.fn(session.stops, **kwargs))  # a run clicked after it runs
    assert len(ups) > 2 and any("Done" in str(v) for up in ups for v in up.values())


def test_a_run_that_fails_before_it_starts_clears_its_waiting_sign_and_says_so():
    """A request refused by a full queue (or whose upload was gone when its turn came) said "waiting for the
    model" for good: the sign is set by the click and cleared only by the run itself."""
    from ui import build_ui
    from ui.widgets import FAILED

    demo = build_ui(FakeBackend())
    deps = demo.get_config_file()["dependencies"]
    runs = [i for i, f in enumerate(demo.fns.values()) if f.name == "unless_stopped"]
    failures = {d["trigger_after"]: d for d in deps if d["trigger_only_on_failure"]}
    assert runs and set(runs) <= failures.keys()  # every model run, the Compare tab's included
    for i in runs:
        fn = demo.fns[failures[i]["id"]]
        session = Session()
        out = fn.fn(session.stops, session)  # its ticket (the Stops counted when it was clicked), and the session
        waiting, *status = out if isinstance(out, tuple) else (out,)
        assert waiting == "" and status in ([], [FAILED]) and not fn.queue  # unqueued: a full queue cannot refuse it too
        assert failures[i]["outputs"][0] in deps[i]["outputs"][-2:]  # the run's own waiting line (then the browser's copy)
        session.stops += 1  # Stop cancelled it, which Gradio counts as a failure: Stop's "Stopped" stays
        out = fn.fn(session.stops - 1, session)
        waiting, *status = out if isinstance(out, tuple) else (out,)
        assert waiting == "" and all(isinstance(s, dict) and s.get("__type__") == "update" and len(s) == 1 for s in status), status


class ReadsFourWords(FakeBackend):
    """A text encoder that reads 4 words and knows no word with a digit in it."""

    def prompt_reading(self, prompt: str) -> PromptReading:
        words = prompt.split()
        return PromptReading(4, " ".join(words[4:]), tuple(w for w in words if any(c.isdigit() for c in w)))


def test_words_the_model_will_not_read_are_said_not_silently_dropped():
    """The emoji model reads 14 tokens: a longer prompt ran towards its first words and said "Done"."""
    studio = Studio(ReadsFourWords())
    long = "a red apple emoji but make it blue"
    ups = run(studio.sdedit(canvas=painting(), **{**SD, "prompt": long}))
    said = 'This model reads the first 4 tokens of a prompt: "but make it blue" at the end of the prompt is left out.'
    assert said in ups[0]["status"] and said in ups[-1]["status"]
    ups = run(studio.text_edit(canvas=painting(), session=Session(), **{**TE, "target_prompt": "a dog 2day"}))
    assert "does not know 2day (in the target prompt)" in ups[-1]["status"] and "source prompt" not in ups[-1]["status"]
    assert not any("reads the first" in str(u.get("status")) for u in run(studio.sdedit(canvas=painting(), **SD)))
    ups = run(Compare(studio).sweep(canvas=painting(), param="T_skip", n_values=2, n_seeds=1, prompt="", source_prompt="a cat",
                                    target_prompt=long, t0=0.5, steps=10, skip=2, eta=1.0, guidance_scale=3.0, seed=0))  # fmt: skip
    assert "at the end of the target prompt is left out" in ups[0]["status"]
    unconditional = Studio(type("U", (ReadsFourWords,), {})(conditional=False))
    assert unconditional.prompt_notices(prompt=long) == []


def test_a_refused_run_is_a_toast_and_leaves_the_last_result_on_the_page():
    """A raised gr.Error made Gradio put an "Error" badge over every output of the run, the last result
    included, while its status still said "Done". The refusal is a toast; a run stopped by one says so."""
    from ui.handlers import Refusal
    from ui.widgets import model_run

    def refused_at_once(**_):
        raise Refusal("Write a target prompt.")
        yield {}

    def refused_midway(**_):
        yield {"status": "Running…", "output": np.zeros((2, 2, 3), np.uint8)}
        raise Refusal("The model refused t0.")

    with gr.Blocks() as demo:
        session, waiting, status, output = gr.State(Session()), gr.HTML(), gr.Markdown(), gr.Image()
        for name, fn in (("at once", refused_at_once), ("midway", refused_midway)):
            model_run(gr.Button(name), fn, {"status": status, "output": output}, {"session": session}, session, waiting)
    runs = dict(zip(("at once", "midway"), [f.fn for f in demo.fns.values() if f.fn.__name__ == "unless_stopped"], strict=True))
    with pytest.warns(UserWarning, match="Write a target prompt"):
        ups = list(runs["at once"](None, session=Session()))
    assert ups == [{waiting: ""}]  # nothing on the page changes
    with pytest.warns(UserWarning, match="The model refused t0"):
        ups = list(runs["midway"](None, session=Session()))
    assert ups[-1] == {status: "Stopped: The model refused t0. The downloads are the last finished run's."}


def test_imagic_says_when_it_reuses_its_optimisation():
    """Moving only η re-rendered in seconds instead of minutes, and said only "Running Imagic…"."""
    from ui.handlers import IMAGIC_REUSED

    class Caching(FakeFullBackend):
        seen = 0

        def imagic(self, image, target_prompt, config):
            frames = super().imagic(image, target_prompt, config)
            self.seen += 1
            if self.seen > 1:  # after the first: straight to the rendering, as a cache hit is
                frames = (f for f in frames if f.stage not in ("optimize", "finetune"))
            return frames

    studio = Studio(Caching())
    args = {"canvas": painting(), "target_prompt": "a dog", "preset": "fast", "guidance_scale": 3.0, "steps": 10, "seed": 0}
    assert IMAGIC_REUSED not in run(studio.imagic(eta=0.7, **args))[-1]["status"]
    ups = run(studio.imagic(eta=0.4, **args))
    assert IMAGIC_REUSED in ups[-1]["status"] and ups[-1]["output"] is not None
    nothing = run(studio.imagic(eta=0.4, embedding_steps=0, finetune_steps=0, **args))  # no optimisation to reuse
    assert IMAGIC_REUSED not in nothing[-1]["status"]


def test_the_sweep_plot_leaves_a_margin_around_its_points():
    """Gradio ends an axis at the extreme values: a point there was drawn cut in half."""
    from ui.compare import padded_limits, sweep_plot

    assert padded_limits([1.0, 2.0]) == pytest.approx([0.92, 2.08]) and padded_limits([]) is None
    assert padded_limits([0.5, 0.5]) == pytest.approx([0.46, 0.54])  # one value: a margin all the same
    backend = FakeBackend()
    session = Session()
    run(Compare(Studio(backend)).sweep(canvas=painting(), param="t0", n_values=3, n_seeds=1, prompt="a", source_prompt="",
                                       target_prompt="", t0=0.5, steps=10, skip=2, eta=1.0, guidance_scale=3.0, seed=0,
                                       session=session))  # fmt: skip
    df, label, props = sweep_plot(session.sweep, [0])
    ys = [it.metrics.get("realism", it.metrics["ssim"]) for it in session.sweep]
    assert props["y_lim"][0] < min(ys) and props["y_lim"][1] > max(ys) and len(df) == 3 + 2  # 2 placeholder rows
    assert label == "SSIM against faithfulness · seed 0 blue, orange = opened result"  # its legend is cut off
    assert session.plot_props == props  # the finished sweep's plot has its margins


def test_the_sweep_plot_never_gets_new_points_and_new_drawing_settings_in_one_update():
    """Gradio's plot redraws itself when its axes, axis title or colours change, and given new points in
    the same update it could redraw the points it had: the last seed of a sweep was missing from its plot.
    Every plot update of a sweep, and of opening a result, changes one or the other; a finished sweep's
    last update gives the axes their margins."""
    from ui.compare import sweep_plot

    compare, session = Compare(Studio(ScoringBackend())), Session()
    settings = ("x_lim", "y_lim", "y_title", "color_map")

    def plots(ups):
        return [u["plot"] for u in ups if "plot" in u]

    args = dict(canvas=painting(), param="t0", n_values=3, n_seeds=2, prompt="a", source_prompt="a face", target_prompt="an angry face",
                t0=0.5, steps=10, skip=2, eta=1.0, guidance_scale=3.0, seed=0, session=session)  # fmt: skip
    for param in ("t0", "t0", "T_skip"):  # a first sweep, one like it, one with another y axis
        shown = [plots([compare._select(session, 0)])[0]] if session.sweep else []  # an opened result of the last sweep
        shown += plots(run(compare.sweep(**{**args, "param": param})))
        for before, after in zip(shown, shown[1:], strict=False):
            new_points = before.value != after.value
            new_settings = any(getattr(before, k) != getattr(after, k) for k in settings)
            assert not (new_points and new_settings), f"{param}: new points and new settings in one update"
        # numeric axes from the first update on (a frame of placeholders only was drawn with category axes)
        assert all(set(p.value["datatypes"].values()) == {"quantitative", "nominal"} for p in shown)
        assert all(p.value["datatypes"]["y"] == "quantitative" for p in shown)
        df, label, props = sweep_plot(session.sweep, [0, 1])
        assert shown[-1].value == gr.ScatterPlot(value=df).value and shown[-1].x_lim == props["x_lim"] is not None
        assert len(shown[-1].value["data"]) == 6 + 3  # both seeds' points, and the placeholders


class ScoringBackend(FakeBackend):
    """A fake with realism and (given a text) alignment scores, as the engine has on the emoji model."""

    def metrics(self, guide, images, mask=None, text="", source_text=""):
        rows = super().metrics(guide, images, mask, text, source_text)
        for k, row in enumerate(rows):
            row["realism"] = 0.5 + 0.01 * k
            if text:
                row["alignment"] = 0.2 + 0.02 * k
            if text and source_text:
                row["alignment_gain"] = 0.05 - 0.01 * k
        return rows


@pytest.mark.parametrize("param, y, texts", [("t0", "realism", ("a smiling face", "")),
                                             ("T_skip", "alignment_gain", ("an angry face", "a face")),
                                             ("eta", "alignment_gain", ("an angry face", "a face"))])  # fmt: skip
def test_sweeps_score_alignment_to_the_prompt_drawn_towards_and_plot_its_gain_for_text_edits(param, y, texts):
    """The inversion paper plots CLIP score (alignment to the target) against LPIPS, SDEdit's realism against
    L2: a T_skip or eta sweep's plot shows the alignment gain (to the target minus to the source), a t0 sweep's
    realism; every result's caption and table row carry its alignment to the prompt it was drawn towards."""
    from ui.compare import sweep_plot

    backend, session = ScoringBackend(), Session()
    ups = run(Compare(Studio(backend)).sweep(canvas=painting(), param=param, n_values=3, n_seeds=1, prompt="a smiling face",
                                             source_prompt="a face", target_prompt="an angry face", t0=0.5, steps=10, skip=2, eta=1.0,
                                             guidance_scale=3.0, seed=0, session=session))  # fmt: skip
    assert backend.metrics_text == texts
    items = session.sweep
    assert all(f"alignment {it.metrics['alignment']:.3f}" in it.label for it in items)
    table = [u for u in ups if "table" in u][-1]["table"]
    assert [row[5] for row in table] == [round(it.metrics["alignment"], 3) for it in items]
    assert [row[6] for row in table] == ([round(it.metrics[y], 3) for it in items] if param != "t0" else ["text edits only"] * 3)
    df, label, _ = sweep_plot(items, [0])
    assert list(df[df["index"] >= 0]["y"]) == [it.metrics[y] for it in items]
    assert label.startswith({"realism": "Realism", "alignment_gain": "Alignment gain"}[y] + " against faithfulness")
