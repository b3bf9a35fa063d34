"""The last run's canvas and prompts, kept by the browser, so that a reload loses no work.

Gradio reloads the page by itself when its connection comes back after a drop (a phone on a train, a
laptop's Wi-Fi): the run was cancelled by the server, and the canvas and the prompts went with the
page. So each run, as it starts, hands the browser its canvas (background and strokes, as the guide
the run reads: `ui.canvas.editor_to_canvas`, flattened, lossless) and its prompts, which the browser
keeps in its localStorage (gr.BrowserState: per browser, encrypted with a key this server makes when
it starts, so it lasts as long as the studio runs). When the page loads, they are put back, and the
status line says so. The mask layer is not kept: the editor names only the layers it makes itself.
"New blank canvas" forgets them.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import gradio as gr
import numpy as np
from PIL import Image

from ui.canvas import CanvasError, editor_to_canvas, image_to_editor_value

STORAGE_KEY = "stroke-studio-last-run"
# A canvas whose lossless copy is larger is not kept (its prompts still are): localStorage holds about
# 5 MB a site, and the value goes there base64-encoded and encrypted (about 1.4 times the bytes).
MAX_BYTES = 2_000_000
RESTORED = ("Your last run's canvas and prompts are back (this browser keeps them; the mask layer is not kept). "
            "**New blank canvas** starts afresh.")  # fmt: skip


def encode(image: np.ndarray) -> str | None:
    """A uint8 RGB picture as a lossless WebP, base64; None when it is larger than MAX_BYTES. The least effort
    (quality 0, method 0): it runs as every run starts, and a 1024 px photo took 1.0 s at quality 100, method 4,
    against 0.07 s (770 kB against 585 kB)."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "WEBP", lossless=True, quality=0, method=0)
    return base64.b64encode(buf.getvalue()).decode("ascii") if buf.tell() <= MAX_BYTES else None


def decode(data: Any) -> np.ndarray | None:
    """`encode`'s text back to RGB pixels; None for anything else (nothing kept, or not a picture)."""
    if not isinstance(data, str) or not data:
        return None
    try:
        with Image.open(io.BytesIO(base64.b64decode(data, validate=True))) as img:
            return np.asarray(img.convert("RGB"))
    except (ValueError, OSError):
        return None


class Keeper:
    """The browser's copy of the last run's canvas and prompts (`state`), and the prompt boxes it fills."""

    def __init__(self) -> None:
        self.state = gr.BrowserState(None, storage_key=STORAGE_KEY)
        self.boxes: dict[str, gr.Textbox] = {}  # the prompt boxes the runs read, by component id (runs share boxes)

    def register(self, inputs: dict[str, Any]) -> dict[str, str]:
        """A model run's prompt boxes (its text inputs named *prompt): {name: key}."""
        names = {name: str(box._id) for name, box in inputs.items() if name.endswith("prompt") and isinstance(box, gr.Textbox)}
        self.boxes.update({key: inputs[name] for name, key in names.items()})
        return names

    @staticmethod
    def value(kwargs: dict[str, Any], names: dict[str, str]) -> dict:
        """What a run starting with `kwargs` leaves the browser to keep: its canvas, if one can run, and its prompts."""
        try:
            canvas = encode(editor_to_canvas(kwargs.get("canvas")).guide.image)
        except CanvasError:  # an empty canvas: the run is refused, and the last one's canvas is still worth keeping
            canvas = None
        return {"canvas": canvas, "texts": {key: kwargs[name] for name, key in names.items() if isinstance(kwargs.get(name), str)}}

    def restore(self, kept: Any) -> tuple:
        """On page load: (canvas, status, *prompt boxes) from what the browser kept; nothing changes when it kept nothing."""
        kept = kept if isinstance(kept, dict) else {}
        image, texts = decode(kept.get("canvas")), kept.get("texts") if isinstance(kept.get("texts"), dict) else {}
        boxes = [texts[key] if isinstance(texts.get(key), str) else gr.skip() for key in self.boxes]
        if image is None:
            return (gr.skip(), gr.skip(), *boxes)
        return (image_to_editor_value(image), RESTORED, *boxes)
