"""The files a served studio leaves: never seen half-written by another visitor's download (Gradio's image
cache, ui/gradio_cache.py; result files, editing/recipe.py's write_atomic), and deleted once older than
--keep-hours (ui/retention.py)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("gradio")


def short_reads(path: Path, rewrite, seconds: float = 1.5) -> tuple[int, list[int]]:
    """Read `path` over and over while another thread calls `rewrite()` (which writes the same bytes);
    return how many reads there were and the sizes of those that did not see the whole file."""
    full = path.stat().st_size
    stop = threading.Event()

    def writer():
        while not stop.is_set():
            rewrite()

    t = threading.Thread(target=writer)
    t.start()
    reads, short = 0, []
    try:
        end = time.time() + seconds
        while time.time() < end:
            n = len(path.read_bytes())
            reads += 1
            if n != full:
                short.append(n)
    finally:
        stop.set()
        t.join()
    return reads, short


@pytest.fixture
def picture():
    return np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)


def test_gradio_image_cache_is_never_read_half_written(tmp_path, picture):
    from gradio import processing_utils

    from ui import gradio_cache

    gradio_cache.install()
    path = Path(processing_utils.save_img_array_to_cache(picture, str(tmp_path), format="png"))
    reads, short = short_reads(path, lambda: processing_utils.save_img_array_to_cache(picture, str(tmp_path), format="png"))
    assert reads > 100 and short == []
    with Image.open(path) as im:
        assert np.array_equal(np.asarray(im), picture)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no staging file left behind


def test_gradio_image_cache_keeps_gradios_names(tmp_path, picture):
    """Same folder (the hash of the bytes) and name as Gradio's own, so nothing else in Gradio notices."""
    from gradio import processing_utils

    from ui import gradio_cache

    data = processing_utils.encode_pil_to_bytes(Image.fromarray(picture), "webp")
    expected = (tmp_path / processing_utils.hash_bytes(data) / "image.webp").resolve()
    assert gradio_cache.save_pil_to_cache(Image.fromarray(picture), str(tmp_path)) == str(expected)
    assert expected.read_bytes() == data


def test_result_files_are_replaced_whole(tmp_path, picture):
    from editing.recipe import read_png_recipe, save_png, write_recipe

    recipe = {"method": "sdedit", "note": "x" * 10_000}
    png = save_png(picture, tmp_path / "r.png", recipe)
    js = write_recipe(recipe, tmp_path / "r.json")
    reads, short = short_reads(png, lambda: save_png(picture, png, recipe), seconds=1.0)
    assert reads > 100 and short == []
    reads, short = short_reads(js, lambda: write_recipe(recipe, js), seconds=0.5)
    assert reads > 100 and short == []
    assert read_png_recipe(png) == recipe
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "r.png"]


def test_retention_prunes_old_files_and_empty_folders_but_not_protected_or_new(tmp_path, monkeypatch):
    import os

    from ui.retention import Retention

    for name in ("seconds", "folders", "protected", "_last"):
        monkeypatch.setattr(Retention, name, getattr(Retention, name))
    now = 1_000_000.0
    old, new, shown = tmp_path / "h1" / "image.png", tmp_path / "h2" / "image.png", tmp_path / "h3" / "apple.png"
    for f, age in ((old, 100), (new, 5), (shown, 100)):
        f.parent.mkdir()
        f.write_bytes(b"x")
        os.utime(f, (now - age, now - age))
    assert Retention.prune(now) == 0  # nothing is pruned unless the studio asked for it
    Retention.keep(60, tmp_path, protect={str(shown)})
    assert Retention.prune(now) == 1
    assert not old.exists() and not old.parent.exists() and new.is_file() and shown.is_file()
    os.utime(new, (now - 100, now - 100))
    assert Retention.prune(now + 30) == 0  # at most once a minute (or once per `seconds`, if shorter)
    assert Retention.prune(now + 61) == 1 and not new.exists() and shown.is_file()
