"""The studio served on 127.0.0.1 with a real model, driven by gradio_client through its named endpoints."""

from __future__ import annotations

import io
import os
import socket
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

EMOJI = Path(__file__).resolve().parent.parent / "assets" / "models" / "emoji"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def backend(request):
    """The embedded emoji model when it has landed, else the tiny random text-conditioned pixel model."""
    from editing.backend import EngineBackend

    if (EMOJI / "unet").is_dir():  # what load_model("emoji") needs
        return EngineBackend.load("emoji", device="cpu")
    return EngineBackend(request.getfixturevalue("tiny_pixel_text"))


@pytest.fixture(scope="module")
def server(backend):
    import app
    import ui

    demo = ui.build_ui(backend)
    url, _ = app.serve(demo, host="127.0.0.1", port=free_port(), block=False)
    yield url
    demo.close()


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client

    return Client(server, verbose=False, analytics_enabled=False)


@pytest.fixture()
def guide_png(tmp_path) -> tuple[str, tuple[int, int]]:
    image = np.full((48, 64, 3), 255, np.uint8)
    image[10:30, 8:40] = (220, 40, 40)  # a red blob on white: a stroke painting
    path = tmp_path / "guide.png"
    Image.fromarray(image).save(path)
    return str(path), (64, 48)


def test_only_the_named_endpoints_are_public(client):
    names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert names == {"/sdedit", "/composite", "/edit", "/color", "/shift", "/imagic", "/sweep"}


def test_every_parameter_says_what_it_is_and_the_ranges_it_states_are_the_ones_refused(client, server, guide_png, tmp_path):
    """The API page and view_api() described no parameter (a file's was Gradio's FileData docstring, and its
    sample a PDF on the internet): ranges, choices and units were learnt from failed calls."""
    import re

    import requests
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    api = requests.get(server + "gradio_api/info", timeout=30).json()["named_endpoints"]
    for name, endpoint in api.items():
        for p in endpoint["parameters"] + endpoint["returns"]:
            text = p["python_type"]["description"]
            assert len(text) > 25 and "FileData" not in text and "GradioModel" not in text, (name, p["label"], text)
        for p in endpoint["parameters"]:
            if p["component"] == "File":
                assert p["example_input"]["url"] == "assets/examples/smiley.png"
    assert (EMOJI.parent.parent / "examples" / "smiley.png").is_file()
    # every stated range holds: a value just past either end is refused naming the parameter, before any run
    path, _ = guide_png
    paint = np.zeros((48, 64, 4), np.uint8)
    paint[5:20, 5:20] = (0, 0, 255, 255)
    Image.fromarray(paint).save(tmp_path / "paint.png")
    needs = {"/sdedit": {}, "/composite": {"patch": handle_file(path)}, "/edit": {"source_prompt": "a", "target_prompt": "b"},
             "/color": {"colour": handle_file(str(tmp_path / "paint.png"))}, "/shift": {"dx": 1}, "/imagic": {"target_prompt": "b"},
             "/sweep": {"n_values": 1}}  # fmt: skip
    interval = re.compile(r"in ([\[(])(-?[\d.]+), (-?[\d.]+)\]")
    checked = 0
    for name, endpoint in api.items():
        for p in endpoint["parameters"]:
            m = interval.search(p["python_type"]["description"])
            if m is None:
                continue
            lo, hi = float(m[2]), float(m[3])
            step = 1 if p["python_type"]["type"] == "int" else 0.01
            for value in (lo if m[1] == "(" else lo - step, hi + step):
                value = int(value) if step == 1 else value
                few = {"steps": 4} if any(q["parameter_name"] == "steps" for q in endpoint["parameters"]) else {}
                with pytest.raises(AppError, match=re.escape(p["parameter_name"]) + "|out of range"):
                    client.predict(handle_file(path), **{**needs[name], **few, p["parameter_name"]: value}, api_name=name)
                    pytest.fail(f"{name} {p['parameter_name']}={value} was not refused")
                checked += 1
    assert checked >= 50


def test_sdedit_streams_frames_then_a_result_of_the_guides_size(client, guide_png):
    from gradio_client import handle_file

    path, size = guide_png
    job = client.submit(handle_file(path), "a red apple", 0.6, 10, 3.0, 7, api_name="/sdedit")
    image_path, info = job.result(timeout=300)
    outputs = job.outputs()
    previews = [o for o in outputs[:-1] if "step" in o[1] and o[0] is not None]
    assert len(previews) >= 2
    with Image.open(image_path) as im:
        assert im.size == size
    assert info["recipe"]["method"] == "sdedit" and info["recipe"]["configs"]["sdedit"]["values"]["seed"] == 7
    assert info["recipe"]["configs"]["sdedit"]["values"]["t0"] == 0.6
    steps = [o[1]["step"][0] for o in previews]
    assert steps == sorted(steps) and steps[-1] <= 6  # ceil(0.6 * 10) steps, streamed in order


def test_sweep_returns_one_result_per_value_with_metrics(client, guide_png):
    from gradio_client import handle_file

    path, _ = guide_png
    gallery, results = client.predict(handle_file(path), "a red apple", "t0", 4, 1, 10, 3, 1.0, 3.0, 0, "", "",
                                      api_name="/sweep")  # fmt: skip
    assert len(gallery) == 4 and len(results) == 4
    assert [r["value"] for r in results] == [0.1, 0.4, 0.7, 1.0]
    for r in results:
        assert r["l2"] >= 0 and -1 <= r["ssim"] <= 1
    assert results[0]["l2"] < results[-1]["l2"]  # t0 = 0.1 stays closer to the guide than t0 = 1
    recipes = [r["recipe"] for r in results]
    assert [r["configs"]["sdedit"]["values"]["t0"] for r in recipes] == [0.1, 0.4, 0.7, 1.0]
    assert all(r["method"] == "sdedit" and r["batch"]["size"] == 4 and r["prompts"] == {"prompt": "a red apple"} for r in recipes)
    # a T_skip sweep's edits take edit_guidance_scale, not SDEdit's guidance_scale
    _, results = client.predict(handle_file(path), param="T_skip", n_values=2, steps=6, guidance_scale=1.5, edit_guidance_scale=6.0,
                                source_prompt="a red apple", target_prompt="a green apple", api_name="/sweep")  # fmt: skip
    assert [r["recipe"]["configs"]["edit"]["values"]["guidance_scale"] for r in results] == [6.0, 6.0]
    # the results stream as each seed's finish (it returned only at the end), and a picture's notes reach the caller
    wide = Path(path).with_name("wide.png")
    Image.open(path).resize((1200, 900)).save(wide)  # over 1024 px: run downscaled, which the status says
    job = client.submit(handle_file(str(wide)), prompt="a red apple", n_values=2, n_seeds=2, steps=4, api_name="/sweep")
    sent = [len(out[1]) for out in job]
    assert sent == [2, 4], sent
    assert all("downscaled to 1024x768" in r["status"] for r in job.outputs()[-1][1])
    # "skip", the name of the step parameter beside it, is T_skip
    _, results = client.predict(handle_file(path), param="skip", n_values=1, steps=4, source_prompt="a", target_prompt="b",
                                api_name="/sweep")  # fmt: skip
    assert results[0]["param"] == "T_skip"


def test_edit_endpoint_reuses_the_inversion_within_a_session_only(client, guide_png):
    from gradio_client import handle_file

    path, size = guide_png
    args = (handle_file(path), "a red blob", "a blue blob", 8, 1.0, 3.5)
    first = client.submit(*args, 2, 5.0, 0, api_name="/edit")
    first.result(timeout=300)
    assert any(o[1].get("step", [0, 0, ""])[2] == "invert" for o in first.outputs())
    second = client.submit(*args, 4, 5.0, 0, api_name="/edit")  # only T_skip changed
    image_path, info = second.result(timeout=300)
    assert not any(o[1].get("step", [0, 0, ""])[2] == "invert" for o in second.outputs())
    with Image.open(image_path) as im:
        assert im.size == size
    assert info["recipe"]["configs"]["edit"]["values"]["skip"] == 4
    from gradio_client import Client

    other = Client(client.src, verbose=False, analytics_enabled=False).submit(*args, 4, 5.0, 0, api_name="/edit")
    other.result(timeout=300)  # another session: it must invert for itself
    assert any(o[1].get("step", [0, 0, ""])[2] == "invert" for o in other.outputs())


def test_imagic_endpoint_optimises_then_renders(client, guide_png):
    from gradio_client import handle_file

    path, size = guide_png
    job = client.submit(handle_file(path), "a blue blob", 0.8, 1, 4, 3, api_name="/imagic")  # eta, seed, 4 + 3 Adam steps
    image_path, info = job.result(timeout=300)
    stages = {o[1]["step"][2] for o in job.outputs()[:-1] if "step" in o[1]}
    assert {"optimize", "finetune", "denoise"} <= stages
    with Image.open(image_path) as im:
        assert im.size == size
    assert info["recipe"]["method"] == "imagic" and info["recipe"]["configs"]["imagic"]["values"]["eta"] == 0.8
    # the loss streams with the optimisation's previews (its last step has one)
    assert any("loss" in o[1] and o[1]["step"][2] == "optimize" for o in job.outputs()[:-1])
    # the paper's preset: its learning rates and guidance, the step counts given
    from editing.interface import ImagicConfig

    _, info = client.predict(handle_file(path), "a blue blob", 0.8, 1, 2, 2, steps=4, preset="paper", api_name="/imagic")
    values, paper = info["recipe"]["configs"]["imagic"]["values"], ImagicConfig.from_preset("paper", "pixel-text")
    assert values["preset"] == "paper" and values["guidance_scale"] == paper.guidance_scale and values["steps"] == 4
    assert values["embedding_lr"] == paper.embedding_lr and values["embedding_steps"] == 2


def test_a_full_queue_refuses_with_a_message(guide_png):
    """Gradio's own queue limit (--queue-size): the extra request gets 'Queue is full', the others finish."""
    from gradio_client import Client, handle_file

    import app
    import ui
    from tests.fake_backend import FakeBackend

    backend = FakeBackend(step_delay=0.1)
    demo = ui.build_ui(backend)
    url, _ = app.serve(demo, port=free_port(), queue_size=1, block=False)
    try:
        clients = [Client(url, verbose=False, analytics_enabled=False) for _ in range(3)]
        jobs = [clients[0].submit(handle_file(guide_png[0]), "", 1.0, 60, 3.0, 0, api_name="/sdedit")]  # 60 steps, 6 s
        deadline = time.time() + 60
        while backend.steps_run < 1 and time.time() < deadline:  # the first is running (not a guess on a busy machine)
            time.sleep(0.05)
        assert backend.steps_run >= 1
        for c in clients[1:]:  # the second waits in the queue, the third finds it full
            jobs.append(c.submit(handle_file(guide_png[0]), "", 1.0, 60, 3.0, 0, api_name="/sdedit"))
            time.sleep(0.5)
        errors = []
        for j in jobs:
            try:
                j.result(timeout=120)
            except Exception as e:  # noqa: BLE001 - the client raises a generic error carrying the server's message
                errors.append(str(e))
        assert len(errors) == 1 and "Queue is full" in errors[0]
    finally:
        demo.close()


def test_a_visitor_whose_run_waits_sees_the_queue_on_the_result():
    """Runs share one model (one at a time): every page event that runs it shows Gradio's progress,
    "queue: 1/2" and a timer while it waits, on the Result (a sweep on its gallery); the page's own
    progress bar only starts with the run. Hidden, a waiting visitor saw "Ready" and nothing else."""
    import ui
    from tests.fake_backend import FakeBackend

    demo = ui.build_ui(FakeBackend())
    by_id = {b._id: b for b in demo.blocks.values()}
    bar = next(i for i, b in by_id.items() if "ss-progress" in str(getattr(b, "value", "")))
    shown_on = {i for i, b in by_id.items() if getattr(b, "elem_id", None) in ("ss-output", "ss-sweep", "ss-cross")}
    deps = [d for d in demo.config["dependencies"] if bar in d["outputs"] and d["api_visibility"] == "private"]
    runs = [d for d in deps if d["types"]["generator"]]  # Stop writes the bar too, at once (not a run: no queue)
    assert len(deps) == len(runs) + 1 and len(runs) >= 10  # the eight tabs' buttons, Imagic, the sweep and the method comparison
    for d in runs:
        assert d["show_progress"] == "full" and d["show_progress_on"] and set(d["show_progress_on"]) <= shown_on, d["api_name"]
    # and in words, under the progress bar: the click says it waits (at once, unqueued), the run clears it when it starts
    waiting = next(i for i, b in by_id.items() if getattr(b, "elem_id", None) == "ss-waiting")
    stamps = [d for d in demo.config["dependencies"] if waiting in d["outputs"] and not d["types"]["generator"]
              and not d["trigger_only_on_failure"]]  # fmt: skip
    assert all(waiting in d["outputs"] for d in runs) and len(stamps) == len(runs) + 1  # + Stop, which clears it
    # and a run that fails before it starts (a full queue) clears it too
    failed = [d for d in demo.config["dependencies"] if waiting in d["outputs"] and d["trigger_only_on_failure"]]
    assert len(failed) == len(runs)
    # a second click while its run goes runs after it, and clears the sign then ("once" dropped it: the sign stayed)
    assert {d["trigger_mode"] for d in runs} == {"always_last"}


def test_old_files_are_deleted_so_a_shared_studio_does_not_fill_the_disk(guide_png, tmp_path, monkeypatch):
    """--keep-hours (here 2 seconds): the studio's own Gradio cache (every streamed preview, the upload,
    copies of results) and the result files with their recipes go once older than that, as new runs
    finish; the examples the page shows stay. What a studio stopped earlier left goes at start."""
    from gradio_client import Client, handle_file

    import app
    import ui
    from tests.fake_backend import FakeBackend
    from ui import recipe, retention
    from ui.recipe import output_dir

    cache = tmp_path / "gradio-cache"
    monkeypatch.setattr(retention, "STUDIO_GRADIO_CACHE", cache)
    monkeypatch.setenv("GRADIO_TEMP_DIR", "")  # restored after the test, as is Retention below
    for name in ("seconds", "folders", "protected"):
        monkeypatch.setattr(retention.Retention, name, getattr(retention.Retention, name))
    # this test's results folders, not the machine's (a studio running beside the tests keeps its files)
    monkeypatch.setattr(recipe, "RESULTS_ROOT", tmp_path / "results")
    output_dir.cache_clear()
    earlier = tmp_path / "results" / "run-earlier" / "sdedit-seed0-0000.png"  # a studio stopped an hour ago
    earlier.parent.mkdir(parents=True)
    earlier.write_bytes(b"png")
    os.utime(earlier, (time.time() - 3600, time.time() - 3600))
    assert retention.use_own_gradio_cache() == cache
    demo = ui.build_ui(FakeBackend())
    url, _ = app.serve(demo, port=free_port(), keep_hours=2 / 3600, block=False)
    try:
        assert not earlier.parent.exists()  # at start, before any run
        assert output_dir().is_dir() and output_dir().parent == tmp_path / "results"
        examples = {Path(f) for f in retention.Retention.protected} - {output_dir().resolve()}
        assert examples and all(f.is_relative_to(cache) and f.is_file() for f in examples)
        client = Client(url, verbose=False, analytics_enabled=False)
        _, info = client.predict(handle_file(guide_png[0]), "", 1.0, 12, 3.0, 0, api_name="/sdedit")
        png = output_dir() / info["recipe"]["output"]["file"]
        results = [png, png.with_suffix(".json"), *(output_dir() / r["file"] for r in info["recipe"]["inputs"].values())]
        first = {f for f in cache.rglob("*") if f.is_file()} - examples  # the upload, previews, result copies
        assert len(first) >= 3 and all(f.is_file() for f in results)
        time.sleep(2.5)
        other = tmp_path / "other.png"  # the same upload again would be fresh again (Gradio touches a copy it hands out)
        Image.fromarray(np.full((40, 40, 3), 200, np.uint8)).save(other)
        client.predict(handle_file(str(other)), "", 1.0, 12, 3.0, 1, api_name="/sdedit")
        assert [f for f in first | set(results) if f.exists()] == []
        assert all(f.is_file() for f in examples)
        assert len({f for f in cache.rglob("*") if f.is_file()} - examples) >= 3  # the new run's
        assert len(list(output_dir().glob("sdedit-seed1-*"))) >= 3
        for f in output_dir().iterdir():  # the studio's own folder stays when its files have gone
            os.utime(f, (time.time() - 3600, time.time() - 3600))
        assert retention.Retention.prune(time.time() + 120) >= 3 and output_dir().is_dir() and not any(output_dir().iterdir())
    finally:
        demo.close()
        output_dir.cache_clear()  # later tests make their folder under the restored RESULTS_ROOT


def test_cancelling_a_run_stops_the_backend_within_a_step(guide_png):
    """What the Stop button does (cancels=[...]): Gradio closes the generator at its next frame."""
    from gradio_client import Client, handle_file

    import app
    import ui
    from tests.fake_backend import FakeBackend

    backend = FakeBackend(step_delay=0.1)
    demo = ui.build_ui(backend)
    url, _ = app.serve(demo, port=free_port(), block=False)
    try:
        job = Client(url, verbose=False, analytics_enabled=False).submit(handle_file(guide_png[0]), "", 1.0, 200, 3.0, 0,
                                                                         api_name="/sdedit")  # fmt: skip
        deadline = time.time() + 60
        while backend.steps_run < 5 and time.time() < deadline:
            time.sleep(0.05)
        job.cancel()
        time.sleep(1.0)
        stopped_at = backend.steps_run
        time.sleep(1.0)
        assert backend.steps_run - stopped_at <= 1 and backend.steps_run < 100
    finally:
        demo.close()


def test_engine_backend_adds_realism_only_with_the_emoji_encoder(tiny_pixel_text, tmp_path):
    """Faithfulness always; realism (k-NN cosine to held-out emoji in the encoder's space) only with encoder weights,
    and alignment (cosine of the image's and the text's embeddings) when a text is given."""
    import json

    from editing.backend import EngineBackend

    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(12)]
    bare = EngineBackend(tiny_pixel_text, encoder_path=tmp_path / "missing").metrics(images[0], images[:2])
    assert set(bare[0]) == {"l2", "ssim"} and bare[0]["l2"] == 0.0

    encoder_mod = pytest.importorskip("editing.encoder")
    from safetensors.torch import save_file

    enc = encoder_mod.EmojiEncoder()
    enc.save(tmp_path / "enc")
    ref = enc.eval().embed_images(np.stack(images))
    save_file({"features": ref}, str(tmp_path / "enc" / "reference_features.safetensors"))
    (tmp_path / "enc" / "reference_captions.json").write_text(json.dumps(["x"] * len(images)))
    rows = EngineBackend(tiny_pixel_text, encoder_path=tmp_path / "enc").metrics(images[0], images[:3])
    expected = (ref[:3] @ ref.T).topk(10, dim=1).values.mean(dim=1)
    np.testing.assert_allclose([r["realism"] for r in rows], expected.numpy(), rtol=1e-5, atol=1e-6)
    assert "alignment" not in rows[0]  # no text, no alignment
    rows = EngineBackend(tiny_pixel_text, encoder_path=tmp_path / "enc").metrics(images[0], images[:3], text="red apple")
    expected = ref[:3] @ enc.embed_texts(["red apple"])[0]  # cosine of the image's and the text's embeddings
    np.testing.assert_allclose([r["alignment"] for r in rows], expected.numpy(), rtol=1e-5, atol=1e-6)
    assert "alignment_gain" not in rows[0]  # no source text
    rows = EngineBackend(tiny_pixel_text, encoder_path=tmp_path / "enc").metrics(images[0], images[:3], text="red apple",
                                                                                 source_text="green apple")  # fmt: skip
    gain = expected - ref[:3] @ enc.embed_texts(["green apple"])[0]
    np.testing.assert_allclose([r["alignment_gain"] for r in rows], gain.numpy(), rtol=1e-5, atol=1e-6)


def test_unsupported_files_are_refused_with_a_message(client, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    bogus = tmp_path / "notes.txt"
    bogus.write_text("not a picture")
    with pytest.raises(AppError, match="The image file: cannot read image 'notes.txt': not a supported or intact image file"):
        client.predict(handle_file(str(bogus)), api_name="/sdedit")
    photo = io.BytesIO()  # a JPEG cut short in transfer: named as damaged, not as a format to change
    Image.new("RGB", (64, 64), "red").save(photo, "JPEG")
    (tmp_path / "cut.jpg").write_bytes(photo.getvalue()[:300])
    with pytest.raises(AppError, match="cannot read image 'cut.jpg': not a supported or intact image file") as e:
        client.predict(handle_file(str(tmp_path / "cut.jpg")), api_name="/sdedit")
    assert "/tmp" not in str(e.value)  # the server's own copy of the upload is not named


def test_command_line_help_bad_model_and_auth(tmp_path):
    import subprocess
    import sys

    from app import parse_auth

    out = subprocess.run([sys.executable, "-c", "import sys, app; app.parse_args(['--help'])"], capture_output=True, text=True)
    assert out.returncode == 0 and "--queue-size" in out.stdout and "--threads" in out.stdout
    for bad in (["--threads", "0"], ["--queue-size", "0"]):  # argparse's one-line usage error, exit 2
        out = subprocess.run([sys.executable, "app.py", *bad], capture_output=True, text=True)
        assert out.returncode == 2 and "Traceback" not in out.stderr and "must be at least 1" in out.stderr
    for bad in (["--keep-hours", "-1"], ["--keep-hours", "nan"]):
        out = subprocess.run([sys.executable, "app.py", *bad], capture_output=True, text=True)
        assert out.returncode == 2 and "Traceback" not in out.stderr and "--keep-hours must be 0" in out.stderr
    out = subprocess.run([sys.executable, "-c", "import sys, app; print('torch' in sys.modules)"], capture_output=True, text=True)
    assert out.stdout.strip() == "False"  # --help never pays for torch
    out = subprocess.run([sys.executable, "app.py", "--model", str(tmp_path / "no-such-model")], capture_output=True, text=True)
    assert out.returncode == 2 and "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert "no-such-model" in out.stderr
    out = subprocess.run([sys.executable, "app.py", "--device", "banana"], capture_output=True, text=True)  # a device torch does not know
    assert out.returncode == 2 and "Traceback" not in out.stderr and out.stderr.strip() == (
        "app.py: device 'banana' is not a torch device: use cpu, cuda, cuda:N or mps.")

    assert parse_auth("me:pa:ss") == [("me", "pa:ss")]
    users = tmp_path / "users.txt"
    users.write_text("# studio users\nann:one\n\nbob:two\n")
    assert parse_auth(str(users)) == [("ann", "one"), ("bob", "two")]
    with pytest.raises(ValueError, match=r"^--auth: no file 'nocolon'; give USER:PASS, or a file of USER:PASS lines$"):
        parse_auth("nocolon")  # a file's name, not there (it was read as a USER:PASS without its colon)
    with pytest.raises(ValueError, match=r"^--auth: no file './cfg/users:prod.txt'"):
        parse_auth("./cfg/users:prod.txt")  # was user './cfg/users', password 'prod.txt'
    users.write_text(" bob : builder \n\nann-without-colon\n")
    with pytest.raises(ValueError) as err:
        parse_auth(str(users))
    assert str(err.value) == f"--auth file {str(users)!r}, line 3, expects USER:PASS: a user name, a colon and a password"
    users.write_text(" bob : builder \n")
    assert parse_auth(str(users)) == [("bob", "builder")]  # it was ('bob ', ' builder'): "Incorrect Credentials"


def test_a_share_link_that_cannot_open_is_said_in_one_line(capsys):
    """Offline, Gradio returns no share URL; the studio says so and keeps serving locally."""
    import app

    class Demo:  # what serve uses of a Blocks: its cache folder and files, queue, launch, block_thread
        GRADIO_CACHE, temp_file_sets = "/nonexistent", []

        def queue(self, **kw):
            return self

        def launch(self, **kw):
            assert kw["share"] is True
            return None, "http://127.0.0.1:7860/", None

        def block_thread(self):
            pass

    assert app.serve(Demo(), share=True) == ("http://127.0.0.1:7860/", None)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Stroke Studio is running at http://127.0.0.1:7860/"
    assert len(out) == 2 and out[1].startswith("No public share link: Gradio could not open its tunnel")


def test_the_result_carries_its_recipe_and_replays_with_the_callers_own_input(client, guide_png, tmp_path, capsys):
    """The API's result is the page's download, recipe embedded; the inputs the recipe names are the
    caller's own files, which replay takes with --input."""
    from gradio_client import handle_file

    from editing.cli import main
    from editing.recipe import read_png_recipe

    path, _ = guide_png
    image_path, info = client.predict(handle_file(path), "a red apple", 0.5, 6, 1.0, 2, api_name="/sdedit")
    assert read_png_recipe(image_path) == info["recipe"]
    assert main(["replay", image_path, "--input", f"guide={path}", "--out", str(tmp_path / "again.png"), "--quiet"]) == 0
    assert "identical" in capsys.readouterr().out
    assert main(["replay", image_path, "--input", "mask=x.png", "--quiet"]) == 2
    assert "ROLE one of the recipe's inputs: guide" in capsys.readouterr().err


def test_colour_and_shift_endpoints(client, guide_png, tmp_path):
    from gradio_client import handle_file

    path, size = guide_png
    paint = np.zeros((48, 64, 4), np.uint8)
    paint[12:28, 10:38] = (40, 60, 230, 255)  # blue over the red blob, transparent elsewhere
    Image.fromarray(paint, "RGBA").save(tmp_path / "paint.png")
    job = client.submit(handle_file(path), handle_file(str(tmp_path / "paint.png")), None, "a red blob", steps=6, api_name="/color")
    image_path, info = job.result(timeout=300)
    outs = job.outputs()  # "done" only at the end, just before the result: not after the inversion
    assert [i for i, o in enumerate(outs) if o[1].get("step", [0, 0, ""])[2] == "done"] == [len(outs) - 2]
    assert any(o[1].get("step", [0, 0, ""])[2] == "invert" for o in outs)
    recipe = info["recipe"]
    assert recipe["method"] == "color" and recipe["configs"]["color"]["values"]["keep_outside"] is True
    assert recipe["configs"]["color"]["values"]["t2"] == round(0.6 * 6)  # the studio's 30 of 50, in 6 steps
    with Image.open(image_path) as im:
        out, before = np.asarray(im.convert("RGB")).astype(int), np.asarray(Image.open(path).convert("RGB")).astype(int)
    inside = (slice(14, 26), slice(12, 36))
    assert out[inside][..., 2].mean() > before[inside][..., 2].mean() + 20  # bluer where painted
    # replayed from the files the caller sent: the colour layer as painted, its paint the mask
    from editing.cli import main

    assert main(["replay", image_path, "--input", f"image={path}", "--input", f"colour={tmp_path / 'paint.png'}",
                 "--out", str(tmp_path / "again.png"), "--quiet"]) == 0  # fmt: skip
    # an opaque colour image needs a mask; a mask selects where it counts
    opaque = np.asarray(Image.open(path).convert("RGB")).copy()
    opaque[12:28, 10:38] = (40, 60, 230)
    Image.fromarray(opaque).save(tmp_path / "repainted.png")
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="Send a mask"):
        client.predict(handle_file(path), handle_file(str(tmp_path / "repainted.png")), None, "a red blob", steps=6, api_name="/color")
    mask = np.zeros((48, 64), np.uint8)
    mask[12:28, 10:38] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    _, info = client.predict(handle_file(path), handle_file(str(tmp_path / "repainted.png")), handle_file(str(tmp_path / "mask.png")),
                             "a red blob", steps=6, api_name="/color")  # fmt: skip
    assert info["recipe"]["method"] == "color"
    Image.fromarray(np.zeros((48, 64, 4), np.uint8), "RGBA").save(tmp_path / "nothing.png")  # selects nothing
    with pytest.raises(AppError, match="The mask selects nothing"):  # it fell back to the paint, and ran
        client.predict(handle_file(path), handle_file(str(tmp_path / "paint.png")), handle_file(str(tmp_path / "nothing.png")),
                       "a red blob", steps=6, api_name="/color")  # fmt: skip

    image_path, info = client.predict(handle_file(path), "a red blob", 4, 0, steps=6, api_name="/shift")
    assert info["recipe"]["method"] == "shift" and info["recipe"]["configs"]["shift"]["values"]["dx"] == 4
    with Image.open(image_path) as im:
        assert im.size == size


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"t0": "abc", "api_name": "/sdedit"}, "t0='abc' is not a number."),
        ({"steps": 2.5, "api_name": "/sdedit"}, "steps=2.5 must be a whole number."),
        ({"steps": None, "api_name": "/sdedit"}, "steps=None is not a number."),
        ({"param": "eta", "edit_guidance_scale": -1, "target_prompt": "x", "api_name": "/sweep"},
         "edit_guidance_scale (the text edit's target guidance): guidance_scale=-1.0 is out of range"),
        ({"param": "bogus", "api_name": "/sweep"}, "param='bogus' is not one of: 't0', 'T_skip', 'eta'"),  # was Gradio's, unnamed
        # these ran: "no" as true (Python's bool of a word), a number or a list as its Python spelling
        ({"patch": "PATCH", "cut_background": "no", "api_name": "/composite"}, "cut_background='no' must be true or false."),
        ({"prompt": 123, "api_name": "/sdedit"}, "prompt=123 must be text."),
        ({"prompt": ["a", "b"], "api_name": "/sdedit"}, "prompt=['a', 'b'] must be text."),
        ({"sampler": "euler", "api_name": "/sdedit"}, "sampler='euler'; allowed: 'ddpm' or 'ddim'"),
        ({"target_prompt": "x", "preset": "slow", "api_name": "/imagic"}, "preset='slow'; allowed: 'fast' or 'paper'"),
    ],
)
def test_a_bad_api_value_is_refused_naming_its_parameter(client, guide_png, kwargs, message):
    import re

    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    path, _ = guide_png
    kwargs = {k: handle_file(path) if v == "PATCH" else v for k, v in kwargs.items()}
    with pytest.raises(AppError, match=re.escape(message)):
        client.predict(handle_file(path), **kwargs)


def test_the_largest_seed_runs_as_given_and_true_false_words_are_read(client, guide_png):
    """Through a float, a seed past 2**53 lost its last digits, and 2**63 - 1, the largest allowed, was refused."""
    from gradio_client import handle_file

    path, _ = guide_png
    for seed in (2**53 + 1, 2**63 - 1):
        _, info = client.predict(handle_file(path), prompt="x", t0=0.3, steps=4, seed=seed, api_name="/sdedit")
        assert info["recipe"]["configs"]["sdedit"]["values"]["seed"] == seed
    _, info = client.predict(handle_file(path), prompt="x", t0=0.3, steps=4, repeats=2, sampler="ddim", api_name="/sdedit")
    assert {k: info["recipe"]["configs"]["sdedit"]["values"][k] for k in ("repeats", "sampler")} == {"repeats": 2, "sampler": "ddim"}
    paint = np.zeros((48, 64, 4), np.uint8)
    paint[5:20, 5:20] = (0, 0, 255, 255)
    colour = Path(path).with_name("paint.png")
    Image.fromarray(paint).save(colour)
    _, info = client.predict(handle_file(path), handle_file(str(colour)), steps=4, keep_outside="false", api_name="/color")
    assert info["recipe"]["configs"]["color"]["values"]["keep_outside"] is False  # "false" ran as true


def test_numeric_strings_are_read_and_a_left_out_t_skip_scales_with_the_steps(client, guide_png):
    from gradio_client import handle_file

    path, _ = guide_png
    _, info = client.predict(handle_file(path), source_prompt="a", target_prompt="b", steps="6", skip="2", api_name="/edit")
    assert info["recipe"]["configs"]["edit"]["values"]["skip"] == 2 and info["recipe"]["configs"]["inversion"]["values"]["steps"] == 6


def test_a_refused_request_leaves_no_traceback_in_the_servers_log(client, guide_png, capfd, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    path, _ = guide_png
    capfd.readouterr()
    for bad in ({"t0": 2.0}, {"t0": "abc"}):
        with pytest.raises(AppError, match="t0="):
            client.predict(handle_file(path), api_name="/sdedit", **bad)
    size = Image.open(path).size
    paint = np.zeros((size[1], size[0], 4), np.uint8)
    paint[:8, :8] = (0, 0, 255, 255)
    Image.fromarray(paint, "RGBA").save(tmp_path / "paint.png")
    with pytest.raises(AppError, match=r"mode='bogus' is not one of: 'x0', 'noise'"):  # a choice: Gradio logged a traceback
        client.predict(handle_file(path), handle_file(str(tmp_path / "paint.png")), None, "a", steps=4, mode="bogus", api_name="/color")
    logged = capfd.readouterr()
    assert "Traceback" not in logged.out + logged.err


def test_a_result_from_a_picture_over_1024_px_replays_with_the_callers_own_file(client, tmp_path, capsys):
    """The API shrinks a picture over 1024 px and its recipe names the shrunk one, which it never sends
    back: replay with the caller's own file failed ("is not the one the recipe was made from")."""
    from gradio_client import handle_file
    from PIL import Image

    from editing.cli import main

    big = tmp_path / "big.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (1100, 1030, 3), dtype=np.uint8)).save(big)
    image_path, info = client.predict(handle_file(str(big)), "a red apple", 0.5, 4, 1.0, 2, api_name="/sdedit")
    assert info["recipe"]["output"]["shape"][:2] == [1024, 959]
    assert main(["replay", image_path, "--input", f"guide={big}", "--out", str(tmp_path / "again.png"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "note: the guide given is 1030x1100; the run used it downscaled to 959x1024" in out and "identical" in out
    other = tmp_path / "other.png"
    Image.fromarray(rng.integers(0, 256, (1100, 1030, 3), dtype=np.uint8)).save(other)
    assert main(["replay", image_path, "--input", f"guide={other}", "--quiet"]) == 2  # another picture is still refused
    assert "is not the one the recipe was made from" in capsys.readouterr().err


def test_blank_files_are_refused_in_the_apis_terms(client, guide_png, tmp_path):
    """They were refused in the studio's words: "The canvas is empty: paint some strokes…", "Paint the new
    colour on the 'strokes' layer…": an API caller has no canvas and no layers."""
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    path, (w, h) = guide_png
    Image.fromarray(np.zeros((h, w, 4), np.uint8), "RGBA").save(tmp_path / "clear.png")
    with pytest.raises(AppError, match=r"^The image is blank \(all white or transparent\): send the picture"):
        client.predict(handle_file(str(tmp_path / "clear.png")), "a", api_name="/sdedit")
    with pytest.raises(AppError, match=r"^The colour image is transparent everywhere"):
        client.predict(handle_file(path), handle_file(str(tmp_path / "clear.png")), None, "a", steps=4, api_name="/color")


def test_sdedit_takes_a_mask_as_the_stroke_edit_tab_does(client, guide_png, tmp_path, capsys):
    """Stroke edit was not reachable through the API: /sdedit took no mask."""
    from gradio_client import handle_file

    from editing.cli import main

    path, (w, h) = guide_png
    mask = np.zeros((h, w), np.uint8)
    mask[8:24, 8:40] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    image_path, info = client.predict(handle_file(path), "a red apple", 0.8, 6, 1.0, 2, handle_file(str(tmp_path / "mask.png")),
                                      api_name="/sdedit")  # fmt: skip
    assert set(info["recipe"]["inputs"]) == {"guide", "mask"} and info["recipe"]["studio"]["mode"] == "sdedit-masked"
    with Image.open(image_path) as im, Image.open(path) as before:
        out, src = np.asarray(im.convert("RGB")), np.asarray(before.convert("RGB"))
    outside = mask == 0
    assert np.array_equal(out[outside], src[outside]) and not np.array_equal(out[~outside], src[~outside])
    assert main(["replay", image_path, "--input", f"guide={path}", "--input", f"mask={tmp_path / 'mask.png'}",
                 "--out", str(tmp_path / "again.png"), "--quiet"]) == 0  # fmt: skip
    assert "identical" in capsys.readouterr().out


def test_composite_blends_a_patch_in_as_the_composite_tab_does(client, guide_png, tmp_path, capsys):
    """Composite was not reachable through the API. An object on white is cut out, pasted at (x, y) and
    patch_scale of the width, and only its footprint is re-generated; the recipe replays."""
    from gradio_client import handle_file

    from editing.cli import main
    from ui.recipe import RESULTS_ROOT

    path, (w, h) = guide_png
    patch = np.full((16, 16, 3), 255, np.uint8)
    patch[4:12, 4:12] = (30, 60, 220)  # a blue square on white, opaque: its white is cut out
    Image.fromarray(patch).save(tmp_path / "patch.png")
    image_path, info = client.predict(handle_file(path), handle_file(str(tmp_path / "patch.png")), "a blue box", 0.8, 6, 1.0, 3,
                                      0.75, 0.5, 0.25, True, api_name="/composite")  # fmt: skip
    recipe = info["recipe"]
    assert recipe["studio"]["mode"] == "sdedit-composite" and set(recipe["inputs"]) == {"guide", "mask"}
    with Image.open(image_path) as im, Image.open(path) as before:
        out, src = np.asarray(im.convert("RGB")), np.asarray(before.convert("RGB"))
    assert out.shape == src.shape
    # the square lands 8 px wide, centred at (48, 24): only there (feathered by a model pixel) may pixels change
    box = np.zeros((h, w), bool)
    box[16:32, 40:56] = True
    assert np.array_equal(out[~box], src[~box]) and not np.array_equal(out[box], src[box])
    stored = {role: next(RESULTS_ROOT.rglob(r["file"])) for role, r in recipe["inputs"].items()}  # the studio keeps its inputs
    assert main(["replay", image_path, "--input", f"guide={stored['guide']}", "--input", f"mask={stored['mask']}",
                 "--out", str(tmp_path / "again.png"), "--quiet"]) == 0  # fmt: skip
    assert "identical" in capsys.readouterr().out


def test_a_photo_with_an_exif_orientation_is_read_upright(client, tmp_path):
    """Phones store pictures sideways with an EXIF orientation; the API read them as stored, so the result came
    back on its side (the studio's upload and the command line turn them upright)."""
    from gradio_client import handle_file

    stored = np.full((48, 64, 3), 255, np.uint8)
    stored[:, :16] = (220, 40, 40)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    Image.fromarray(stored).save(tmp_path / "phone.jpg", exif=exif)
    image_path, _ = client.predict(handle_file(str(tmp_path / "phone.jpg")), "a red apple", 0.2, 4, 1.0, 1, api_name="/sdedit")
    with Image.open(image_path) as im:
        assert im.size == (48, 64)


def test_the_readmes_api_example_runs_against_the_studio(server, tmp_path, monkeypatch, capsys):
    """The README's gradio_client block, run as written (fewer steps) against a served studio, with the
    mask, paint and patch files it names made beside it: the API docs cannot drift from the endpoints."""
    import re

    root = Path(__file__).resolve().parent.parent
    text = (root / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", text[text.index("\n## API\n") :], re.S).group(1)
    code = code.replace("http://127.0.0.1:7860/", server).replace("steps=20", "steps=8")
    with Image.open(root / "assets/examples/photo-cat.jpg") as im:
        w, h = im.size
    (tmp_path / "assets").symlink_to(root / "assets")
    mask = np.zeros((h, w), np.uint8)
    mask[40:120, 100:200] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    paint = np.zeros((h, w, 4), np.uint8)
    paint[60:100, 150:220] = (30, 60, 220, 255)
    Image.fromarray(paint, "RGBA").save(tmp_path / "paint.png")
    patch = np.full((32, 32, 3), 255, np.uint8)
    patch[8:24, 8:24] = (200, 30, 30)
    Image.fromarray(patch).save(tmp_path / "patch.png")
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, "README.md (API)", "exec"), scope)
    assert scope["info"]["recipe"]["method"] == "imagic"
    assert len(scope["results"]) == 3 and {"value", "l2", "ssim"} <= set(scope["results"][0])
    printed = capsys.readouterr().out.splitlines()
    assert any(line.startswith("[") for line in printed)  # the streamed steps, "[i, n, stage]"
