"""Small builders shared by the tabs: sliders from the config dataclasses, seed rows, name binding."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import gradio as gr

from editing.interface import ModelInfo
from ui.defaults import SLIDERS, studio_default


def bind(fn: Callable[..., Iterator[dict]], outputs: dict[str, gr.components.Component], **fixed: Any) -> Callable:
    """A generator handler yielding {name: value} -> one yielding {component: value} for Gradio."""

    def run(**kwargs: Any) -> Iterator[dict]:
        for up in fn(**fixed, **kwargs):
            yield {outputs[k]: v for k, v in up.items() if k in outputs}

    return run


def slider(info: ModelInfo, cls: type, name: str, **kw: Any) -> gr.Slider:
    """A slider for config field `name`, starting at the studio default; kw overrides the spec (range, label, layout)."""
    s = SLIDERS[name]
    args = {"minimum": s.minimum, "maximum": s.maximum, "step": s.step, "label": s.label, "info": s.info or None}
    return gr.Slider(value=studio_default(info, cls, name), **{**args, **kw})


def seed_row(info: ModelInfo, cls: type) -> gr.Number:
    with gr.Row(equal_height=True):
        seed = gr.Number(value=studio_default(info, cls, "seed"), precision=0, minimum=0, label="Seed", scale=4)
        dice = gr.Button("🎲 Randomise", scale=1, min_width=90, size="sm")
    dice.click(lambda: random.randint(0, 2**31 - 1), None, seed, queue=False, api_visibility="private")
    return seed


def howto(text: str) -> None:
    gr.Markdown(text, elem_classes="ss-howto")
