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


def within_steps(steps: float, *values: float) -> list[dict]:
    """Updates for step-indexed sliders when the step count becomes `steps`: range 0..steps-1, a value beyond it pulled in."""
    last = max(int(steps) - 1, 0)
    return [gr.update(maximum=last, value=min(int(v), last)) for v in values]


def follow_steps(steps: gr.Slider, *indexed: gr.Slider) -> None:
    """Sliders that index a step (T_skip, t1, t2) follow the step count (`within_steps`), so they
    never offer a setting the engine refuses."""

    def follow(n: float, *values: float) -> Any:
        updates = within_steps(n, *values)
        return updates[0] if len(updates) == 1 else updates  # Gradio takes a lone output's update bare

    steps.change(follow, [steps, *indexed], list(indexed), queue=False, show_progress="hidden", api_visibility="private")


def seed_row(info: ModelInfo, cls: type) -> gr.Number:
    with gr.Row(equal_height=True):
        seed = gr.Number(value=studio_default(info, cls, "seed"), precision=0, minimum=0, label="Seed", scale=4)
        dice = gr.Button("🎲 Randomise", scale=1, min_width=90, size="sm")
    dice.click(lambda: random.randint(0, 2**31 - 1), None, seed, queue=False, api_visibility="private")
    return seed


def howto(text: str) -> None:
    gr.Markdown(text, elem_classes="ss-howto")
