"""The command line on image files: outputs, recipes, exact replay, clear errors."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from PIL import Image

from editing.cli import main
from editing.recipe import upgrade_recipe


@pytest.fixture()
def guide_file(tmp_path):
    rng = np.random.default_rng(0)
    img = np.full((20, 28, 4), 255, np.uint8)  # odd size, RGBA: composited on white, result back at 20x28
    img[4:16, 6:20, :3] = (220, 40, 30)
    img[..., 3] = 255
    img[0:3, 0:3, 3] = 0  # transparent corner
    img[10:12, 10:12, :3] = rng.integers(0, 255, (2, 2, 3))
    path = tmp_path / "guide.png"
    Image.fromarray(img, "RGBA").save(path)
    return path


def _run(args, capsys):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_sdedit_writes_image_and_recipe_and_replay_is_exact(tiny_dir, guide_file, tmp_path, capsys):
    out = tmp_path / "out" / "a.png"
    model = tiny_dir / "pixel-text"
    code, stdout, _ = _run(["sdedit", "--guide", guide_file, "--prompt", "a red square", "--t0", "0.6", "--steps", "10",
                            "--seed", "3", "--model", model, "--out", out, "--quiet"], capsys)
    assert code == 0, stdout
    result = np.asarray(Image.open(out))
    assert result.shape == (20, 28, 3) and result.dtype == np.uint8
    recipe = json.loads(out.with_suffix(".json").read_text())
    assert recipe["method"] == "sdedit"
    assert recipe["configs"]["sdedit"]["values"]["t0"] == 0.6
    assert recipe["configs"]["sdedit"]["values"]["seed"] == 3
    assert recipe["prompts"] == {"prompt": "a red square"}
    assert recipe["model"]["weights_hash"] and recipe["versions"]["torch"]
    assert json.loads(Image.open(out).text["recipe"]) == recipe  # embedded in the PNG too

    code, stdout, _ = _run(["replay", out.with_suffix(".json"), "--out", tmp_path / "replay.png", "--quiet"], capsys)
    assert code == 0 and "identical" in stdout
    assert np.array_equal(np.asarray(Image.open(tmp_path / "replay.png")), result)

    # another seed really changes the picture
    code, _, _ = _run(["sdedit", "--guide", guide_file, "--prompt", "a red square", "--t0", "0.6", "--steps", "10",
                       "--seed", "4", "--model", model, "--out", tmp_path / "b.png", "--quiet"], capsys)
    assert code == 0 and not np.array_equal(np.asarray(Image.open(tmp_path / "b.png")), result)


def test_previews_are_written_where_asked_every_preview_every_steps(tiny_dir, guide_file, tmp_path, capsys):
    code, stdout, _ = _run(["sdedit", "--guide", guide_file, "--t0", "0.6", "--steps", "10", "--preview-every", "2",
                            "--previews", tmp_path / "pv", "--model", tiny_dir / "pixel-ddpm", "--out", tmp_path / "o.png",
                            "--quiet"], capsys)  # fmt: skip
    assert code == 0, stdout
    names = sorted(p.name for p in (tmp_path / "pv").iterdir())
    assert names == [f"denoise-{s:04d}-{k}.png" for s in (2, 4) for k in ("x0", "xt")]
    assert all(np.asarray(Image.open(tmp_path / "pv" / n)).shape == (16, 16, 3) for n in names)  # the model's side
    code, _, err = _run(["sdedit", "--guide", guide_file, "--previews", guide_file, "--model", tiny_dir / "pixel-ddpm",
                         "--out", tmp_path / "p.png", "--quiet"], capsys)  # fmt: skip
    assert code == 2 and "cannot write --previews" in err


def test_edit_and_replay(tiny_dir, guide_file, tmp_path, capsys):
    out = tmp_path / "edit.png"
    code, stdout, _ = _run(["edit", "--image", guide_file, "--source", "a red square", "--target", "a blue square",
                            "--steps", "8", "--skip", "2", "--model", tiny_dir / "pixel-text", "--out", out, "--quiet"], capsys)
    assert code == 0, stdout
    recipe = json.loads(out.with_suffix(".json").read_text())
    assert set(recipe["configs"]) == {"inversion", "edit"}
    assert recipe["configs"]["edit"]["values"]["skip"] == 2
    assert recipe["configs"]["inversion"]["values"]["first_step"] == 2  # a one-shot edit extracts only the maps it uses
    code, stdout, _ = _run(["replay", out.with_suffix(".json"), "--quiet"], capsys)
    assert code == 0 and "identical" in stdout


def test_colour_edit_and_replay_and_a_version_1_recipe(tiny_dir, guide_file, tmp_path, capsys):
    _colour_inputs(guide_file, tmp_path)  # colour.png and mask.png
    out = tmp_path / "blue.png"
    code, stdout, _ = _run(["color", "--image", guide_file, "--colour", tmp_path / "colour.png", "--mask", tmp_path / "mask.png",
                            "--source", "a red square", "--steps", "8", "--t2", "4", "--strength", "0.7",
                            "--model", tiny_dir / "pixel-text", "--out", out, "--quiet"], capsys)  # fmt: skip
    assert code == 0, stdout
    recipe = json.loads(out.with_suffix(".json").read_text())
    assert recipe["recipe_version"] == 3 and recipe["configs"]["color"]["values"]["mode"] == "x0"
    code, stdout, _ = _run(["replay", out.with_suffix(".json"), "--quiet"], capsys)
    assert code == 0 and "identical" in stdout

    # the same edit as written before strength became the total share: the per-step pull over 5 steps
    old = json.loads(json.dumps(recipe))
    old["recipe_version"] = 1
    old["configs"]["color"]["values"]["strength"] = 1 - (1 - 0.7) ** (1 / 5)
    del old["configs"]["color"]["values"]["mode"], old["configs"]["color"]["values"]["alpha"]
    for rec in [*old["inputs"].values(), old["output"]]:  # versions 1 and 2 named the files "path"
        rec["path"] = rec.pop("file")
    (tmp_path / "old.json").write_text(json.dumps(old))
    assert upgrade_recipe(old)["configs"]["color"]["values"]["strength"] == pytest.approx(0.7, abs=1e-12)
    code, stdout, _ = _run(["replay", tmp_path / "old.json", "--quiet"], capsys)
    assert code == 0 and "identical" in stdout

    # --target left out: the picture is regenerated under its source prompt (recorded as such), not under ""
    assert recipe["prompts"] == {"source": "a red square", "target": "a red square"}
    unconditional = tmp_path / "unconditional.png"
    code, _, _ = _run(["color", "--image", guide_file, "--colour", tmp_path / "colour.png", "--mask", tmp_path / "mask.png",
                       "--source", "a red square", "--target", "", "--steps", "8", "--t2", "4", "--strength", "0.7",
                       "--model", tiny_dir / "pixel-text", "--out", unconditional, "--quiet"], capsys)  # fmt: skip
    assert code == 0 and not np.array_equal(np.asarray(Image.open(unconditional)), np.asarray(Image.open(out)))


def test_sweep_writes_metrics_per_value(tiny_dir, guide_file, tmp_path, capsys):
    code, stdout, _ = _run(["sweep", "sdedit", "--guide", guide_file, "--param", "t0", "--values", "0.2,0.9",
                            "--seeds", "0,1", "--steps", "6", "--model", tiny_dir / "pixel-ddpm", "--out-dir", tmp_path / "sw",
                            "--quiet"], capsys)
    assert code == 0, stdout
    rows = json.loads((tmp_path / "sw" / "metrics.json").read_text())
    assert [(r["t0"], r["seed"]) for r in rows] == [(0.2, 0), (0.2, 1), (0.9, 0), (0.9, 1)]
    assert all(r["l2"] >= 0 and -1 <= r["ssim"] <= 1 for r in rows)
    recipe = json.loads((tmp_path / "sw" / rows[3]["path"]).with_suffix(".json").read_text())  # beside metrics.json
    assert recipe["batch"]["index"] == 3 and recipe["batch"]["size"] == 4  # the whole batch, so replay re-runs it
    code, stdout, _ = _run(["replay", (tmp_path / "sw" / rows[3]["path"]).with_suffix(".json"), "--quiet"], capsys)
    assert code == 0 and "identical" in stdout
    recipe["batch"]["index"] = 0  # a batch record that does not hold the recipe's own settings: an edited recipe
    (tmp_path / "edited.json").write_text(json.dumps(recipe))
    code, _, err = _run(["replay", tmp_path / "edited.json", "--quiet"], capsys)
    assert code == 2 and "the recipe's batch does not hold its own settings" in err


def test_sweep_over_t_skip_inverts_once_and_each_result_replays(tiny_dir, guide_file, tmp_path, capsys, monkeypatch):
    """An edit sweep over target-side settings reuses the inversion (same image, prompt, settings) and runs
    its edits as one batch; a new seed inverts again; every result replays alone. --param takes the
    studio's name T_skip for skip."""
    import editing.inversion as inversion

    calls = []

    def counting(*a, **kw):
        calls.append(a[3].seed)
        return real(*a, **kw)

    real = inversion.invert
    monkeypatch.setattr(inversion, "invert", counting)
    monkeypatch.setattr(inversion, "edit", None)  # the edits run as one batch per seed (editing.sweep.edit_sweep)
    code, stdout, _ = _run(["sweep", "edit", "--image", guide_file, "--source", "a red square", "--target", "a blue square",
                            "--param", "T_skip", "--values", "0,2,4", "--seeds", "0,1", "--steps", "6", "--model",
                            tiny_dir / "pixel-text", "--out-dir", tmp_path / "sw", "--quiet"], capsys)  # fmt: skip
    assert code == 0, stdout
    assert calls == [0, 1]  # one inversion per seed: the runs go seed by seed
    monkeypatch.undo()
    first = {json.loads((tmp_path / "sw" / f"edit-skip{v}-seed0.json").read_text())["configs"]["inversion"]["values"]["first_step"]
             for v in (0, 2, 4)}  # fmt: skip
    assert first == {0}  # the maps from the sweep's lowest T_skip
    for seed in (0, 1):  # made in a batch of 3: replay re-runs the batch, to the bit; alone, to the last bits' rounding
        code, stdout, _ = _run(["replay", tmp_path / "sw" / f"edit-skip2-seed{seed}.json", "--quiet"], capsys)
        assert code == 0 and "identical" in stdout, stdout
        code, stdout, _ = _run(["replay", tmp_path / "sw" / f"edit-skip2-seed{seed}.json", "--alone", "--quiet"], capsys)
        assert code == 0 or ("DIFFERENT" in stdout and "by at most 1 of 255" in stdout and "in a batch of 3" in stdout), stdout


def test_sweep_over_eta_shares_the_inversions_calls_and_replays(tiny_dir, guide_file, tmp_path, capsys, monkeypatch):
    """An eta sweep inverts through `invert_etas` (one set of model calls per seed), edits in one batch,
    and each result replays alone (to the batch's rounding, which replay explains)."""
    import editing.inversion as inversion

    monkeypatch.setattr(inversion, "invert", None)
    monkeypatch.setattr(inversion, "edit", None)
    code, stdout, _ = _run(["sweep", "edit", "--image", guide_file, "--source", "a red square", "--target", "a blue square",
                            "--param", "eta", "--values", "0.5,1.0", "--seeds", "0", "--steps", "6", "--skip", "1", "--model",
                            tiny_dir / "pixel-text", "--out-dir", tmp_path / "sw", "--quiet"], capsys)  # fmt: skip
    assert code == 0, stdout
    monkeypatch.undo()
    rows = json.loads((tmp_path / "sw" / "metrics.json").read_text())
    assert [r["eta"] for r in rows] == [0.5, 1.0]
    for eta in (0.5, 1.0):
        recipe = tmp_path / "sw" / f"edit-eta{eta}-seed0.json"
        assert json.loads(recipe.read_text())["configs"]["inversion"]["values"]["eta"] == eta
        assert json.loads(recipe.read_text())["batch"]["etas"] is True
        code, stdout, _ = _run(["replay", recipe, "--quiet"], capsys)
        assert code == 0 and "identical" in stdout, stdout
        code, stdout, _ = _run(["replay", recipe, "--alone", "--quiet"], capsys)
        assert code == 0 or ("DIFFERENT" in stdout and "in a batch of 2" in stdout), stdout


def test_sdedit_guidance_defaults_to_the_models_recommended_scale(tiny_dir, guide_file, tmp_path, capsys):
    import shutil

    model = tmp_path / "tuned"
    shutil.copytree(tiny_dir / "pixel-text", model)
    meta = json.loads((model / "stroke_studio.json").read_text())
    (model / "stroke_studio.json").write_text(json.dumps({**meta, "recommended_guidance_scale": 2.5}))
    common = ["--guide", guide_file, "--prompt", "a red square", "--steps", "6", "--model", model, "--quiet"]

    def scale(recipe_path):
        return json.loads(recipe_path.read_text())["configs"]["sdedit"]["values"]["guidance_scale"]

    assert _run(["sdedit", *common, "--out", tmp_path / "a.png"], capsys)[0] == 0
    assert scale(tmp_path / "a.json") == 2.5  # the model's own recommendation
    assert _run(["sdedit", *common, "--guidance-scale", "4", "--out", tmp_path / "b.png"], capsys)[0] == 0
    assert scale(tmp_path / "b.json") == 4.0  # what the user asked for wins
    assert _run(["sweep", "sdedit", *common, "--param", "t0", "--values", "0.3,0.6", "--out-dir", tmp_path / "sw"], capsys)[0] == 0
    assert sorted(scale(p) for p in (tmp_path / "sw").glob("*.json") if p.name != "metrics.json") == [2.5, 2.5]
    assert _run(["sweep", "sdedit", *common, "--param", "guidance_scale", "--values", "1,5", "--out-dir", tmp_path / "g"], capsys)[0] == 0
    assert sorted(scale(p) for p in (tmp_path / "g").glob("*.json") if p.name != "metrics.json") == [1.0, 5.0]


def test_edit_guidance_defaults_to_the_models_own_edit_scale(tiny_dir, guide_file, tmp_path, capsys):
    import shutil

    model = tmp_path / "tuned"
    shutil.copytree(tiny_dir / "pixel-text", model)
    common = ["--image", guide_file, "--source", "a red square", "--target", "a blue square", "--steps", "6", "--skip", "1",
              "--model", model, "--quiet"]  # fmt: skip

    def scale(recipe_path):
        return json.loads(recipe_path.read_text())["configs"]["edit"]["values"]["guidance_scale"]

    assert _run(["edit", *common, "--out", tmp_path / "paper.png"], capsys)[0] == 0
    assert scale(tmp_path / "paper.json") == 15.0  # no edit scale named: the paper's
    meta = json.loads((model / "stroke_studio.json").read_text())
    (model / "stroke_studio.json").write_text(json.dumps({**meta, "recommended_edit_guidance_scale": 4.0}))
    assert _run(["edit", *common, "--out", tmp_path / "a.png"], capsys)[0] == 0
    assert scale(tmp_path / "a.json") == 4.0  # the model's own
    assert _run(["edit", *common, "--guidance-scale", "15", "--out", tmp_path / "b.png"], capsys)[0] == 0
    assert scale(tmp_path / "b.json") == 15.0  # what the user asked for wins, even the paper's value
    assert _run(["replay", tmp_path / "a.json", "--quiet"], capsys)[0] == 0


def test_edit_skip_follows_the_models_fraction_of_the_steps(tiny_dir, guide_file, tmp_path, capsys):
    """A model folder that names its text edits' T_skip as a fraction (here 0.2) sets
    --skip's default in the steps actually run; a given --skip wins; without one, the paper's 36 of 100."""
    import shutil

    model = tmp_path / "tuned"
    shutil.copytree(tiny_dir / "pixel-text", model)
    common = ["--image", guide_file, "--source", "a red square", "--target", "a blue square", "--model", model, "--quiet"]

    def skip(recipe_path):
        return json.loads(recipe_path.read_text())["configs"]["edit"]["values"]["skip"]

    assert _run(["edit", *common, "--steps", "40", "--out", tmp_path / "paper.png"], capsys)[0] == 0
    assert skip(tmp_path / "paper.json") == 14  # none named: the paper's 36 of 100, in 40 steps
    meta = json.loads((model / "stroke_studio.json").read_text())
    (model / "stroke_studio.json").write_text(json.dumps({**meta, "recommended_edit_skip_fraction": 0.2}))
    assert _run(["edit", *common, "--steps", "10", "--out", tmp_path / "a.png"], capsys)[0] == 0
    assert skip(tmp_path / "a.json") == 2  # 0.2 of 10 steps
    assert _run(["edit", *common, "--steps", "12", "--skip", "7", "--out", tmp_path / "b.png"], capsys)[0] == 0
    assert skip(tmp_path / "b.json") == 7  # what the user asked for wins
    assert _run(["replay", tmp_path / "a.json", "--quiet"], capsys)[0] == 0
    (model / "stroke_studio.json").write_text(json.dumps({**meta, "recommended_edit_skip_fraction": 1.5}))
    code, _, err = _run(["edit", *common, "--steps", "10", "--out", tmp_path / "c.png"], capsys)
    assert code == 2 and "recommended_edit_skip_fraction" in err and "Traceback" not in err


def test_a_text_edit_on_a_model_that_reads_no_text_is_refused(tiny_dir, guide_file, tmp_path, capsys):
    """It ran, warned twice that the prompts were ignored and gave the picture back (the studio offers no Text
    edit tab there); the colour edit and shift, which need no text, are named instead."""
    for command in (["edit"], ["sweep", "edit", "--param", "skip", "--values", "1,2"]):
        code, _, err = _run([*command, "--image", guide_file, "--source", "a", "--target", "b", "--steps", "4", "--model",
                             tiny_dir / "pixel-ddpm", *(["--out", tmp_path / "o.png"] if command == ["edit"] else ["--out-dir", tmp_path / "o"])],
                            capsys)  # fmt: skip
        assert code == 2 and "reads no text (an unconditional model): a text edit would only give the picture back; the color" in err
        assert "Traceback" not in err and not (tmp_path / "o").exists() and not (tmp_path / "o.png").exists()
    with pytest.warns(UserWarning, match=r"reads no text \(an unconditional model\): --guidance-scale does nothing on it"):
        code, _, _ = _run(["sdedit", "--guide", guide_file, "--steps", "2", "--guidance-scale", "7.5", "--model", tiny_dir / "pixel-ddpm",
                           "--out", tmp_path / "s.png", "--quiet"], capsys)  # fmt: skip
    assert code == 0


def test_shift_skip_follows_the_models_fraction_of_the_steps(tiny_dir, guide_file, tmp_path, capsys):
    """Image shift's T_skip: the paper's 0, or the fraction the model folder names (docs/shift measured
    the emoji model's), in the steps actually run; a bad value is one sentence."""
    import shutil

    model = tmp_path / "tuned"
    shutil.copytree(tiny_dir / "pixel-text", model)
    common = ["--image", guide_file, "--source", "a red square", "--dx", "2", "--model", model, "--quiet", "--steps", "10"]

    def skip(recipe_path):
        return json.loads(recipe_path.read_text())["configs"]["shift"]["values"]["skip"]

    assert _run(["shift", *common, "--out", tmp_path / "paper.png"], capsys)[0] == 0
    assert skip(tmp_path / "paper.json") == 0
    meta = json.loads((model / "stroke_studio.json").read_text())
    (model / "stroke_studio.json").write_text(json.dumps({**meta, "recommended_shift_skip_fraction": 0.3}))
    assert _run(["shift", *common, "--out", tmp_path / "a.png"], capsys)[0] == 0
    assert skip(tmp_path / "a.json") == 3  # 0.3 of 10 steps
    assert _run(["shift", *common, "--skip", "1", "--out", tmp_path / "b.png"], capsys)[0] == 0
    assert skip(tmp_path / "b.json") == 1  # what the user asked for wins
    (model / "stroke_studio.json").write_text(json.dumps({**meta, "recommended_shift_skip_fraction": "0.3"}))
    code, _, err = _run(["shift", *common, "--out", tmp_path / "c.png"], capsys)
    assert code == 2 and "recommended_shift_skip_fraction" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "args, message",
    [
        # in the flags' words, and no --out folder left behind by a refused run
        (["sdedit", "--guide", "{guide}", "--t0", "1.5", "--out", "{tmp}/new/o.png"], "--t0 1.5 is out of range; allowed: (0.0, 1.0]"),
        (["sdedit", "--guide", "{guide}", "--guidance-scale", "-1", "--out", "{tmp}/new/deeper/o.png"],
         "--guidance-scale -1.0 is out of range"),
        (["sweep", "sdedit", "--guide", "{guide}", "--param", "t0", "--values", "0.2,,0.4", "--out-dir", "{tmp}/new"],
         "--values '0.2,,0.4' has an empty value between commas"),
        (["sweep", "sdedit", "--guide", "{guide}", "--param", "t0", "--values", "0.2,0.4", "--t0", "0.3"],
         "--t0 is what this sweep varies (--param t0 --values 0.2,0.4): leave --t0 out"),
        (["sdedit", "--guide", "{tmp}/missing.png"], "missing.png"),
        (["sdedit", "--guide", "{guide}", "--model", "{tmp}/no-such-model"], "No model folder"),
        (["edit", "--image", "{guide}", "--target", "t", "--skip", "100", "--steps", "10"], "skip"),
        # known from the flags: refused before inverting (the edit refused it once the inversion had run)
        (["edit", "--image", "{guide}", "--target", "t", "--skip", "2", "--first-step", "5", "--steps", "10"],
         "--first-step 5 is past --skip 2"),
        (["sdedit", "--guide", "{guide}", "--mask", "{small}"], "the --mask is 7x5 and the --guide 28x20: give them at the same size"),
        (["color", "--image", "{guide}", "--colour", "{guide}", "--mask", "{black}"], "the colour mask is empty"),
        (["replay", "{tmp}/nothing.json"], "no recipe file"),
        (["sdedit", "--guide", "{guide}", "--out", "{tmp}/a.jpg"], "must name a .png file"),
        # a text model's edit towards no text would edit towards the unconditional embedding
        (["edit", "--image", "{guide}", "--steps", "4"], "--target is missing"),
        (["sweep", "edit", "--image", "{guide}", "--steps", "4", "--param", "skip", "--values", "1,2"], "--target is missing"),
        # results never overwrite an input, and a folder that cannot be written is said before any run
        (["sdedit", "--guide", "{guide}", "--out", "{guide}"], "would overwrite the --guide file"),
        (["sdedit", "--guide", "{guide}", "--out", "{guide}/o.png"], "cannot write --out"),
        (["sweep", "sdedit", "--guide", "{guide}", "--param", "t0", "--values", "0.5", "--out-dir", "{guide}"], "cannot write --out-dir"),
        (["sweep", "sdedit", "--guide", "{guide}", "--param", "t0", "--values", "0.5,0.5"], "lists 0.5 more than once"),
        (["sweep", "sdedit", "--guide", "{guide}", "--param", "t0", "--values", "0.5", "--seed", "1", "--seeds", "2"],
         "give the seeds once"),
        (["sweep", "color", "--image", "{guide}", "--colour", "{guide}", "--mask", "{guide}", "--param", "keep_outside",
          "--values", "false,maybe"], "could not read --values 'false,maybe'"),
        (["sdedit", "--guide", "{guide}", "--steps", "many"], "argument --steps: invalid int value: 'many'"),
        # refused before the model loads (this folder does not exist): nothing to move, nothing is run
        (["shift", "--image", "{guide}", "--model", "{tmp}/no-such-model"], "--dx and --dy are both 0"),
        (["shift", "--image", "{guide}", "--dx", "16", "--steps", "4"], "--dx 16 --dy 0 is out of range; allowed: [-15, 15] each"),
        # a sweep's values too, before inverting (0 may stay: it is a sweep's unmoved baseline)
        (["sweep", "shift", "--image", "{guide}", "--param", "dx", "--values", "0,16", "--steps", "4"],
         "--dx 16 --dy 0 is out of range; allowed: [-15, 15] each"),
    ],
)
def test_bad_input_gives_one_clear_line_and_exit_2(args, message, tiny_dir, guide_file, tmp_path, capsys):
    Image.fromarray(np.full((5, 7), 255, np.uint8)).save(tmp_path / "small.png")
    Image.fromarray(np.zeros((20, 28), np.uint8)).save(tmp_path / "black.png")
    args = [a.format(guide=guide_file, tmp=tmp_path, small=tmp_path / "small.png", black=tmp_path / "black.png") for a in args]
    if "--model" not in args and args[0] != "replay":
        args += ["--model", str(tiny_dir / "pixel-text")]
    if "many" not in args:
        code, _, err = _run(args + ["--quiet"], capsys)
    else:  # argparse's own refusals exit through SystemExit
        with pytest.raises(SystemExit) as e:
            main(args + ["--quiet"])
        code, err = e.value.code, capsys.readouterr().err
    assert code == 2
    assert message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.glob("**/*.json")), "a refused run wrote a recipe"
    assert not (tmp_path / "new").exists(), "a refused run left its --out folder behind"


def test_boolean_flags_read_false_as_false():
    from editing.cli import build_parser

    args = build_parser().parse_args(["imagic", "--image", "x.png", "--target", "t", "--mixed-precision", "False"])
    assert args.mixed_precision is False
    args = build_parser().parse_args(["imagic", "--image", "x.png", "--target", "t", "--mixed-precision", "true"])
    assert args.mixed_precision is True


def test_sdedit_on_stable_diffusion_defaults_to_its_pipelines_guidance(tiny_dir, guide_file, tmp_path, capsys):
    """A hub SD folder names no scale; SDEdit on it follows SD's own default, 7.5, not the pixel models' 3.0."""
    out = tmp_path / "sd.png"
    code, stdout, _ = _run(["sdedit", "--guide", guide_file, "--prompt", "a red square", "--steps", "4",
                            "--model", tiny_dir / "latent-sd", "--out", out, "--quiet"], capsys)  # fmt: skip
    assert code == 0, stdout
    assert json.loads(out.with_suffix(".json").read_text())["configs"]["sdedit"]["values"]["guidance_scale"] == 7.5


def test_a_recipe_naming_a_relative_model_folder_replays_from_elsewhere(tiny_dir, guide_file, tmp_path, capsys, monkeypatch):
    """`--model pixel-text` from the folder holding it: the recipe records the absolute path."""
    monkeypatch.chdir(tiny_dir)
    out = tmp_path / "rel.png"
    assert _run(["sdedit", "--guide", guide_file, "--steps", "4", "--model", "pixel-text", "--out", out, "--quiet"], capsys)[0] == 0
    assert json.loads(out.with_suffix(".json").read_text())["model"]["id"] == str((tiny_dir / "pixel-text").resolve())
    monkeypatch.chdir(tmp_path)
    code, stdout, _ = _run(["replay", out.with_suffix(".json"), "--quiet", "--threads", "1"], capsys)
    assert code == 0 and "identical" in stdout


def test_replay_explains_an_earlier_studio_recipe(tmp_path, capsys):
    old = {"method": "sdedit", "config": {"sdedit": {"t0": 0.5}}, "prompts": {"prompt": "a face"}, "seed": 0}
    (tmp_path / "old.json").write_text(json.dumps(old))
    code, _, err = _run(["replay", tmp_path / "old.json"], capsys)
    assert code == 2 and "written by an earlier studio" in err and "cannot be replayed" in err


def test_imagic_help_gives_each_presets_default(capsys):
    """Imagic's defaults depend on --preset and the model family; its help says which, not one misleading value."""
    from editing.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["imagic", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--guidance-scale GUIDANCE_SCALE default: the --preset's value for the model's family (fast: 3.0 (pixel-text), 7.5 (latent-sd); paper: 7.5)" in text
    assert "--eta ETA default 0.7" in text  # the same in every preset and family


@pytest.mark.parametrize("device", ["banana", "cuda:7", "mps:0"])
def test_a_device_this_machine_lacks_is_one_sentence(tiny_dir, guide_file, tmp_path, capsys, device):
    """`--device cuda` on a CPU-only torch raised an AssertionError deep in torch's CUDA set-up, and a
    misspelt device a RuntimeError: both were stack traces. Now one line, exit 2, nothing written."""
    import torch

    if device.startswith("mps") and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    if device.startswith("cuda") and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    out = tmp_path / "a.png"
    code, _, err = _run(["sdedit", "--guide", guide_file, "--prompt", "a red square", "--model", tiny_dir / "pixel-text",
                         "--device", device, "--out", out, "--quiet"], capsys)  # fmt: skip
    assert code == 2 and not out.exists()
    assert err.startswith(f"error: device '{device}'") and err.count("\n") == 1 and "Traceback" not in err


def test_threads_below_one_are_refused(guide_file, capsys):
    for bad in ("0", "-2", "two"):
        with pytest.raises(SystemExit) as e:
            main(["sdedit", "--guide", str(guide_file), "--threads", bad])
        assert e.value.code == 2 and "--threads" in capsys.readouterr().err


def test_an_empty_sweep_or_imagic_target_is_one_sentence(tiny_dir, guide_file, tmp_path, capsys):
    code, _, err = _run(["sweep", "sdedit", "--guide", guide_file, "--param", "t0", "--values", " ", "--model", tiny_dir / "pixel-text",
                         "--out-dir", tmp_path / "sw"], capsys)  # fmt: skip
    assert code == 2 and err.startswith("error: no values in") and not (tmp_path / "sw").exists()
    code, _, err = _run(["imagic", "--image", guide_file, "--target", " ", "--model", tiny_dir / "pixel-text", "--out", tmp_path / "i.png"],
                        capsys)  # fmt: skip
    assert code == 2 and err == "error: Imagic needs a target text: what the edited image should show.\n"
    assert not (tmp_path / "i.png").exists()


@pytest.mark.parametrize("flags, why", [(["--finetune-mode", "full"], "and --finetune-mode full"),
                                        (["--preset", "paper"], "and the paper preset fine-tunes every weight")])
def test_a_lora_rank_that_full_fine_tuning_would_ignore_is_refused(flags, why, tiny_dir, guide_file, tmp_path, capsys):
    code, _, err = _run(["imagic", "--image", guide_file, "--target", "a red square", "--lora-rank", "8", *flags,
                         "--model", tiny_dir / "pixel-text", "--out", tmp_path / "i.png"], capsys)  # fmt: skip
    assert code == 2 and err.startswith("error: --lora-rank is read only with --finetune-mode lora, " + why)
    assert not (tmp_path / "i.png").exists()


def _colour_inputs(guide_file, tmp_path):
    """A blue repaint of the red square and its mask, as files; the colour edit's flags for them."""
    colour = np.asarray(Image.open(guide_file).convert("RGB")).copy()
    colour[4:16, 6:20] = (30, 60, 220)
    mask = np.zeros(colour.shape[:2], np.uint8)
    mask[4:16, 6:20] = 255
    Image.fromarray(colour).save(tmp_path / "colour.png")
    Image.fromarray(mask).save(tmp_path / "mask.png")
    return ["--image", guide_file, "--colour", tmp_path / "colour.png", "--mask", tmp_path / "mask.png", "--source", "a red square"]


def test_a_sweep_over_a_true_false_setting_runs_both(tiny_dir, guide_file, tmp_path, capsys):
    """bool("false") is True: a sweep's values of a bool field are read as the single-run flags are."""
    code, stdout, _ = _run(["sweep", "color", *_colour_inputs(guide_file, tmp_path), "--param", "keep_outside", "--values", "false,true",
                            "--steps", "6", "--model", tiny_dir / "pixel-text", "--out-dir", tmp_path / "sw", "--quiet"], capsys)  # fmt: skip
    assert code == 0, stdout
    rows = json.loads((tmp_path / "sw" / "metrics.json").read_text())
    assert [r["keep_outside"] for r in rows] == [False, True] and len({r["path"] for r in rows}) == 2
    off, on = (np.asarray(Image.open(tmp_path / "sw" / r["path"])) for r in rows)
    assert not np.array_equal(off, on)
    assert "wrote 2 images" in stdout


def test_a_sweeps_seed_flag_is_its_seed(tiny_dir, guide_file, tmp_path, capsys):
    code, _, _ = _run(["sweep", "sdedit", "--guide", guide_file, "--param", "t0", "--values", "0.5", "--seed", "5", "--steps", "4",
                       "--model", tiny_dir / "pixel-ddpm", "--out-dir", tmp_path / "sw", "--quiet"], capsys)  # fmt: skip
    assert code == 0
    (row,) = json.loads((tmp_path / "sw" / "metrics.json").read_text())
    assert row["seed"] == 5 and json.loads((tmp_path / "sw" / row["path"]).with_suffix(".json").read_text())["configs"]["sdedit"]["values"]["seed"] == 5


def test_step_indexed_defaults_keep_the_papers_share_of_the_steps(tiny_dir, guide_file, tmp_path, capsys):
    """T_skip 36 and the colour's t2 60 are the paper's for 100 steps: with --steps 20 they are 7 and 12."""
    assert _run(["edit", "--image", guide_file, "--source", "a", "--target", "b", "--steps", "20", "--model", tiny_dir / "latent-sd",
                 "--out", tmp_path / "e.png", "--quiet"], capsys)[0] == 0  # fmt: skip
    values = json.loads((tmp_path / "e.json").read_text())["configs"]
    assert values["edit"]["values"]["skip"] == 7 and values["inversion"]["values"]["first_step"] == 7
    assert _run(["color", *_colour_inputs(guide_file, tmp_path), "--steps", "20", "--model", tiny_dir / "pixel-text",
                 "--out", tmp_path / "c.png", "--quiet"], capsys)[0] == 0  # fmt: skip
    assert json.loads((tmp_path / "c.json").read_text())["configs"]["color"]["values"]["t2"] == 12
    assert _run(["color", *_colour_inputs(guide_file, tmp_path), "--model", tiny_dir / "pixel-text", "--steps", "100", "--quiet",
                 "--out", tmp_path / "d.png", "--t2", "3"], capsys)[0] == 0  # fmt: skip
    assert json.loads((tmp_path / "d.json").read_text())["configs"]["color"]["values"]["t2"] == 3  # given: as given


def test_a_damaged_recipe_is_one_sentence(tiny_dir, guide_file, tmp_path, capsys):
    out = tmp_path / "a.png"
    assert _run(["sdedit", "--guide", guide_file, "--steps", "4", "--model", tiny_dir / "pixel-ddpm", "--out", out, "--quiet"], capsys)[0] == 0
    recipe = json.loads(out.with_suffix(".json").read_text())
    for damage, message in [(lambda r: r["configs"]["sdedit"]["values"].update(bogus=1), "not valid SDEditConfig values"),
                            (lambda r: r["configs"]["sdedit"]["values"].update(t0="0.5"), "not valid SDEditConfig values"),
                            (lambda r: r.update(dtype="bogus"), "dtype 'bogus'"),
                            (lambda r: r.update(recipe_version=99), "recipe version 99, newer than")]:  # fmt: skip
        bad = json.loads(json.dumps(recipe))
        damage(bad)
        (tmp_path / "bad.json").write_text(json.dumps(bad))
        code, _, err = _run(["replay", tmp_path / "bad.json", "--quiet"], capsys)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    # a recorded hash that no longer matches its own PNG: the replay says the recipe or the PNG was edited
    edited = json.loads(json.dumps(recipe))
    edited["output"]["sha256"] = "0" * 64
    (tmp_path / "a.json").write_text(json.dumps(edited))
    code, stdout, _ = _run(["replay", tmp_path / "a.json", "--quiet"], capsys)
    assert code == 1 and "identical to a.png beside it" in stdout


def test_a_result_is_not_left_without_its_recipe_and_ctrl_c_is_one_line(tiny_dir, guide_file, tmp_path, capsys, monkeypatch):
    import editing.cli as cli

    (tmp_path / "o.json").mkdir()  # made after the early check: the recipe cannot be written where it goes
    real = cli.check_out
    monkeypatch.setattr(cli, "check_out", lambda path, inputs=None: real(tmp_path / "x.png", inputs))
    code, _, err = _run(["sdedit", "--guide", guide_file, "--steps", "4", "--model", tiny_dir / "pixel-ddpm",
                         "--out", tmp_path / "o.png", "--quiet"], capsys)  # fmt: skip
    assert code == 2 and err.startswith("error: could not write the result") and str(tmp_path / "o.json") in err
    assert not (tmp_path / "o.png").exists() and not list(tmp_path.glob(".*part"))

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_drain", interrupted)
    code, _, err = _run(["sdedit", "--guide", guide_file, "--steps", "4", "--model", tiny_dir / "pixel-ddpm",
                         "--out", tmp_path / "p.png", "--quiet"], capsys)  # fmt: skip
    assert code == 130 and err == "interrupted: no result written\n"

    def early(*a, **k):  # Ctrl-C while the parser is built (it imports torch): a 40-line traceback
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", early)
    code, _, err = _run(["sdedit", "--guide", guide_file], capsys)
    assert code == 130 and err == "interrupted: no result written\n"


def test_a_masks_transparent_pixels_are_not_selected(tmp_path):
    from editing.images import load_mask

    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[:, :4] = (255, 255, 255, 255)  # white strokes on a transparent layer
    Image.fromarray(rgba, "RGBA").save(tmp_path / "m.png")
    mask = load_mask(tmp_path / "m.png")
    assert mask[:, :4].all() and not mask[:, 4:].any()
    grey = np.zeros((8, 8), np.uint8)
    grey[:, :4] = 255
    np.testing.assert_array_equal(load_mask(grey), mask)


def test_a_transparent_colour_layer_is_laid_over_the_image_and_is_its_own_mask(tiny_dir, guide_file, tmp_path, capsys):
    """--colour as the studio's strokes layer holds it (transparent where nothing changes): no --mask needed,
    and the result is the one the repainted picture with its mask gives."""
    paint = np.zeros((20, 28, 4), np.uint8)
    paint[4:16, 6:20] = (30, 60, 220, 255)
    Image.fromarray(paint, "RGBA").save(tmp_path / "paint.png")
    common = ["--source", "a red square", "--steps", "6", "--model", tiny_dir / "pixel-text", "--quiet"]
    code, _, err = _run(["color", "--image", guide_file, "--colour", tmp_path / "paint.png", *common, "--out", tmp_path / "a.png"], capsys)
    assert code == 0, err
    recipe = json.loads((tmp_path / "a.json").read_text())
    assert set(recipe["inputs"]) == {"image", "colour"}  # the mask is the layer's paint, derived again on replay
    code, stdout, _ = _run(["replay", tmp_path / "a.json", "--quiet"], capsys)
    assert code == 0 and "identical" in stdout
    _colour_inputs(guide_file, tmp_path)  # the same paint as a repainted picture and a mask
    code, _, _ = _run(["color", "--image", guide_file, "--colour", tmp_path / "colour.png", "--mask", tmp_path / "mask.png", *common,
                       "--out", tmp_path / "b.png"], capsys)  # fmt: skip
    assert code == 0
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "a.png")), np.asarray(Image.open(tmp_path / "b.png")))
    code, _, err = _run(["color", "--image", guide_file, "--colour", tmp_path / "colour.png", *common, "--out", tmp_path / "c.png"], capsys)
    assert code == 2 and "give --mask" in err and not (tmp_path / "c.png").exists()


def test_a_sweep_never_writes_over_its_input(tiny_dir, guide_file, tmp_path, capsys):
    (tmp_path / "sw").mkdir()
    guide = tmp_path / "sw" / "sdedit-t00.5-seed0.png"  # the very name the sweep's first result takes
    guide.write_bytes(guide_file.read_bytes())
    code, _, err = _run(["sweep", "sdedit", "--guide", guide, "--param", "t0", "--values", "0.5", "--model", tiny_dir / "pixel-ddpm",
                         "--out-dir", tmp_path / "sw", "--quiet"], capsys)  # fmt: skip
    assert code == 2 and "would overwrite the --guide file" in err
    assert guide.read_bytes() == guide_file.read_bytes()


def test_a_cpu_recipe_records_its_threads_and_replay_uses_as_many(tiny_dir, guide_file, tmp_path, capsys):
    """A CPU's float sums round by how they are split across threads: a latent-SD recipe made with
    --threads 1 replayed 24 pixels off with torch's default threads, and said nothing of why."""
    import torch

    from editing.cli import _difference

    before = torch.get_num_threads()
    try:
        out = tmp_path / "a.png"
        code, stdout, _ = _run(["sdedit", "--guide", guide_file, "--prompt", "a red square", "--steps", "4", "--threads",
                                "1", "--model", tiny_dir / "pixel-text", "--out", out, "--quiet"], capsys)  # fmt: skip
        assert code == 0, stdout
        recipe = json.loads(out.with_suffix(".json").read_text())
        assert recipe["threads"] == 1
        torch.set_num_threads(2)
        code, stdout, _ = _run(["replay", out.with_suffix(".json"), "--out", tmp_path / "r.png", "--quiet"], capsys)
        assert code == 0 and "identical" in stdout and torch.get_num_threads() == 1
        torch.set_num_threads(2)
        result = np.asarray(Image.open(out)).copy()
        result[0, 0] ^= 1  # a replay one level off
        why = _difference(str(out.with_suffix(".json")), {**recipe, "threads": 3}, result, str(tmp_path / "r.png"))
        assert why.endswith("the recipe was made with 3 CPU threads and this replay used 2, which can round differently "
                            "in the last bits (--threads 3)"), why  # fmt: skip
        assert "threads" not in _difference(str(out.with_suffix(".json")), {**recipe, "threads": 2}, result, str(tmp_path / "r.png"))
    finally:
        torch.set_num_threads(before)


def test_words_the_model_will_not_read_are_a_warning(tiny_dir, guide_file, tmp_path, capsys):
    prompt = " ".join(f"w{i}" for i in range(60))
    with pytest.warns(UserWarning) as said:
        code, _, _ = _run(["sdedit", "--guide", guide_file, "--prompt", prompt, "--steps", "2", "--model", tiny_dir / "pixel-text",
                           "--out", tmp_path / "a.png", "--quiet"], capsys)  # fmt: skip
    lines = [str(w.message) for w in said]
    assert code == 0 and any(x.startswith("This model reads the first ") and x.endswith('w18 … (53 words)" at the end of --prompt is left out.')
                             for x in lines), lines  # fmt: skip


def test_a_picture_far_from_square_is_a_warning_as_in_the_studio(tiny_dir, guide_file, tmp_path, capsys):
    """The model squeezes it into a square: the studio said so, the command line did not."""
    Image.new("RGB", (24, 24), "white").save(tmp_path / "square.png")
    for guide, said in ((guide_file, True), (tmp_path / "square.png", False)):  # 28x20, and 24x24
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            code, _, _ = _run(["sdedit", "--guide", guide, "--steps", "2", "--model", tiny_dir / "pixel-ddpm", "--out",
                               tmp_path / "a.png", "--quiet"], capsys)  # fmt: skip
        squeezed = [str(w.message) for w in caught if "not square" in str(w.message)]
        assert code == 0 and squeezed == (["The picture is 28x20, not square: the model works on a square, so it is squeezed into one "
                                           "and the result stretched back, which distorts shapes; crop it to a square for the best "
                                           "result."] if said else [])  # fmt: skip


def test_replay_warns_when_the_models_configs_changed(tiny_dir, guide_file, tmp_path, capsys):
    import shutil

    model = shutil.copytree(tiny_dir / "pixel-ddpm", tmp_path / "m")
    out = tmp_path / "a.png"
    assert _run(["sdedit", "--guide", guide_file, "--steps", "4", "--model", model, "--out", out, "--quiet"], capsys)[0] == 0
    recipe = json.loads(out.with_suffix(".json").read_text())
    assert len(recipe["model"]["config_hash"]) == 16
    sched = next(model.rglob("scheduler_config.json"))
    sched.write_text(json.dumps({**json.loads(sched.read_text()), "prediction_type": "v_prediction"}))
    with pytest.warns(UserWarning, match=r"the model's configs \(scheduler, prediction type...\) differ from the recipe's"):
        _run(["replay", out.with_suffix(".json"), "--out", tmp_path / "r.png", "--quiet"], capsys)


def test_a_true_false_flag_may_be_given_bare():
    """`--keep-outside` alone failed with "expected one argument"."""
    from editing.cli import build_parser

    parser = build_parser()
    base = ["color", "--image", "a.png", "--colour", "b.png"]
    assert parser.parse_args([*base, "--keep-outside"]).keep_outside is True
    assert parser.parse_args([*base, "--keep-outside", "no"]).keep_outside is False
    assert parser.parse_args(base).keep_outside is None  # not given: the config's default


def test_negative_sweep_values_the_british_command_and_replays_recipe_line(tiny_dir, guide_file, tmp_path, capsys):
    """`--values -4,0,4` was "expected one argument"; `colour` was no command and `--color` no flag; replay
    wrote a recipe JSON it did not name."""
    from editing.cli import _negative_values

    assert _negative_values(["sweep", "shift", "--values", "-4,0,4", "--dx", "1"]) == ["sweep", "shift", "--values=-4,0,4", "--dx", "1"]
    assert _negative_values(["--values", "-.5,1"]) == ["--values=-.5,1"] and _negative_values(["--values", "--seed"]) == ["--values", "--seed"]
    model = tiny_dir / "pixel-text"
    code, out, err = _run(["sweep", "shift", "--image", guide_file, "--param", "dx", "--values", "-2,2", "--steps", "4",
                           "--model", model, "--out-dir", tmp_path / "sw", "--quiet"], capsys)  # fmt: skip
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "sw").glob("*.png")) == ["shift-dx-2-seed0.png", "shift-dx2-seed0.png"]
    code, out, _ = _run(["sweep", "shift", "--image", guide_file, "--param", "dx", "--values", "-2", "--steps", "4",
                         "--model", model, "--out-dir", tmp_path / "sw", "--quiet"], capsys)  # fmt: skip
    assert code == 0 and "1 of its results stay in" in out and "shift-dx2-seed0.png" in out  # said, not silently left
    paint = np.zeros((20, 28, 4), np.uint8)
    paint[5:10, 5:10] = (0, 0, 255, 255)
    Image.fromarray(paint, "RGBA").save(tmp_path / "paint.png")
    code, out, err = _run(["colour", "--image", guide_file, "--color", tmp_path / "paint.png", "--steps", "4", "--model", model,
                           "--out", tmp_path / "c.png", "--quiet"], capsys)  # fmt: skip
    assert code == 0, err
    assert json.loads((tmp_path / "c.json").read_text())["method"] == "color"
    code, out, err = _run(["colour", "--image", guide_file, "--color", tmp_path / "paint.png", "--steps", "4", "--model", model,
                           "--out", tmp_path / "c.png", "--quiet"], capsys)  # fmt: skip
    assert code == 0 and out.rstrip().endswith("(replacing the earlier result there; --out names another)")
    code, out, _ = _run(["replay", tmp_path / "c.json", "--quiet"], capsys)
    assert code == 0 and out.startswith(f"wrote {tmp_path / 'c-replay.png'} and {tmp_path / 'c-replay.json'}; pixels identical")


def test_a_long_left_out_tail_is_cut_short_in_the_notice():
    from editing.interface import PromptReading

    (notice,) = PromptReading(tokens=14, left_out=" ".join(["apple"] * 500)).notices("--prompt")
    assert len(notice) < 200 and notice.endswith('apple … (500 words)" at the end of --prompt is left out.')
