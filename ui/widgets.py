"""Small builders shared by the tabs: sliders from the config dataclasses, seed rows, name binding."""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Iterator
from typing import Any

import gradio as gr

from editing.interface import ModelInfo, step_of_fraction
from ui.defaults import SLIDERS, studio_default
from ui.handlers import Refusal
from ui.keep import Keeper

# Shown from the click until the run starts: the canvas's upload (seconds for a large photo) and any
# run ahead in the queue; it cannot tell which, so it names both.
WAITING = ("**Starting:** sending the canvas, and waiting for the model if another run is using it "
           "(**■ Stop** cancels yours).")  # fmt: skip


def scroll_to(elem_id: str) -> str:
    """JS for a run's click: bring what the run fills (the Result, a sweep's gallery) into view when less than
    half of it shows (a phone's or a small laptop's single column puts the buttons far from it), so its
    frames or results are seen as they come."""
    return f"""
() => {{
  const o = document.getElementById("{elem_id}");
  if (!o) return;
  const r = o.getBoundingClientRect();
  const shown = Math.min(r.bottom, window.innerHeight) - Math.max(r.top, 0);
  if (shown < r.height / 2) o.scrollIntoView({{behavior: "smooth", block: "start"}});
}}
"""


NOT_FINISHED = "The downloads are the last finished run's."
FAILED = f"Failed: the message that popped up says why (a full queue: try again in a moment). {NOT_FINISHED}"


def bind(fn: Callable[..., Iterator[dict]], outputs: dict[str, gr.components.Component], **fixed: Any) -> Callable:
    """A generator handler yielding {name: value} -> one yielding {component: value} for Gradio."""

    def run(**kwargs: Any) -> Iterator[dict]:
        for up in fn(**fixed, **kwargs):
            yield {outputs[k]: v for k, v in up.items() if k in outputs}

    return run


def as_toast(fn: Callable[..., tuple], n_outputs: int = 2) -> Callable[..., tuple]:
    """A quick handler whose refusal is a toast and changes none of its `n_outputs`. Raised, Gradio also wrote "Error"
    into every output: the status line, a polite live region, kept it hidden in its text, where a
    screen reader read it after later runs."""

    @functools.wraps(fn)
    def run(*args: Any) -> tuple:
        try:
            return fn(*args)
        except Refusal as e:
            gr.Warning(e.message, title="Not done")
            return tuple(gr.skip() for _ in range(n_outputs))

    return run


def forget_covered_result(session: Any, shown: Any) -> None:
    """A run's update puts `shown` (None: nothing) on the Result panel: once a preview covers the last
    finished result there, "Edit this result" must not put that one on the canvas (after a Stop it did,
    though the panel showed the stopped run's preview). The finished result (`Studio._finish` keeps it
    in the session first) stays."""
    if session is not None and shown is not None and shown is not session.result:
        session.result = None


def model_run(button: gr.Button, fn: Callable[..., Iterator[dict]], outputs: dict[str, gr.components.Component],
              inputs_kwargs: dict[str, gr.components.Component], session: gr.State, waiting: gr.components.Component,
              keeper: Keeper | None = None, **click: Any) -> Any:  # fmt: skip
    """A model run that says when it waits, and that Stop also stops while it waits; returns the event
    Stop cancels.

    The click first (at once, unqueued) puts WAITING in `waiting`, which the run clears when its turn
    comes: Gradio's own queue sign sits on the Result, where the run ahead streams its frames over it.
    It also takes a ticket, the session's count of Stops: Gradio's cancel of a waiting run can lose
    the race with the queue starting it (the run ahead was just cancelled, which frees the queue), and
    the run then painted a few steps over "Stopped" and was cut there, leaving a frozen progress bar.
    A run whose ticket is behind the count does nothing. A click while the same button's run is going
    runs once more after it ("always_last"): with "once" Gradio dropped the click, and the waiting
    message it had already shown stayed. `keeper`: as it starts, the run hands its canvas and prompts to
    the browser to keep (ui/keep.py)."""
    ticket = gr.State(None)
    run = bind(fn, outputs)

    def stopped_since(ticket: int | None, sess: Any) -> bool:
        """Whether Stop was pressed after the click that took `ticket`."""
        return ticket is not None and sess is not None and sess.stops != ticket

    kept = keeper.register(inputs_kwargs) if keeper is not None else {}

    def unless_stopped(ticket: int | None, **kwargs: Any) -> Iterator[dict]:
        yield {waiting: ""}
        sess = kwargs.get("session")
        if stopped_since(ticket, sess):
            return
        if keeper is not None:
            yield {keeper.state: keeper.value(kwargs, kept)}
        started = False
        shown = outputs.get("output")
        try:
            for up in run(**kwargs):
                started = True
                forget_covered_result(sess, up.get(shown) if shown is not None else None)
                yield up
        except Refusal as e:
            # A toast, not a raised error: Gradio marks every output of a failed event with an "Error"
            # badge, which hid the last result while its status still said "Done". Refused before it
            # started, the run changed nothing; stopped by it, its status says so.
            gr.Warning(e.message, title="Not run" if not started else "Stopped")
            if started and "status" in outputs:
                said = e.message if e.message.endswith((".", "?", "!")) else e.message + "."  # engine errors end bare
                yield {outputs["status"]: f"Stopped: {said} {NOT_FINISHED}"}

    stamp = button.click(lambda s: (s.stops if s is not None else None, WAITING), session, [ticket, waiting], queue=False,
                         show_progress="hidden", api_visibility="private")  # fmt: skip
    event = stamp.then(unless_stopped, inputs_kwargs={**inputs_kwargs, "ticket": ticket},
                       outputs=[*outputs.values(), waiting, *([keeper.state] if keeper is not None else [])],
                       trigger_mode="always_last", api_visibility="private", **click)  # fmt: skip
    # A run that failed never cleared the waiting sign: a request refused by a full queue (or whose upload was
    # gone when its turn came) said "waiting for the model" for good, beside Gradio's toast of the reason.
    status = outputs.get("status")

    def failed(ticket: int | None, sess: Any) -> Any:
        """Gradio counts a run Stop cancelled as failed too: Stop's own status ("Stopped", and where) stays then."""
        return ("", gr.skip() if stopped_since(ticket, sess) else FAILED) if status is not None else ""

    event.failure(failed, [ticket, session], [waiting, *([status] if status is not None else [])],
                  queue=False, show_progress="hidden", api_visibility="private")  # fmt: skip
    return event


def slider(info: ModelInfo, cls: type, name: str, **kw: Any) -> gr.Slider:
    """A slider for config field `name`, starting at the studio default; kw overrides the spec (range, label, layout)."""
    s = SLIDERS[name]
    args = {"minimum": s.minimum, "maximum": s.maximum, "step": s.step, "label": s.label, "info": s.info or None}
    return gr.Slider(value=studio_default(info, cls, name), **{**args, **kw})


def within_steps(steps: float, *fractions: float) -> list[dict]:
    """Updates for step-indexed sliders when the step count becomes `steps`: range 0..steps-1, and each
    value keeps its place in the schedule (`fractions`: value / steps when the user last set it), so
    T_skip 5 of 50 becomes 10 of 100 and the edit still starts at the same noise level."""
    return [gr.update(maximum=max(int(steps), 1) - 1, value=step_of_fraction(f, steps)) for f in fractions]


def _number_in(value: Any, lo: float, hi: float) -> float | None:
    """A slider's raw value (typed, so maybe past its ends or not a number) within [lo, hi]; None if not a number."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return min(max(v, float(lo)), float(hi)) if v == v else None


def remember_share(i: int, value: Any, n: Any, fractions: list[float], steps_range: tuple[float, float]) -> list[float]:
    """Slider i's new share of the schedule, value / steps, with a typed value taken as the slider
    will show it (clamped to 0..steps-1; 999 of 50 steps is 49): the anchor `follow_steps` keeps."""
    steps = _number_in(n, *steps_range)
    v = None if steps is None else _number_in(value, 0, max(steps - 1, 0))
    if v is None:
        return list(fractions)
    return [v / max(steps, 1.0) if j == i else f for j, f in enumerate(fractions)]


def follow_steps(steps: gr.Slider, *indexed: gr.Slider) -> None:
    """Sliders that index a step (T_skip, t1, t2) follow the step count (`within_steps`): they never
    offer a setting the engine refuses, and they keep the fraction of the schedule the user chose.
    The fraction is anchored where the user set it (not recomputed at each step of a drag), so a
    slow drag of the step count does not let rounding walk the value away.

    The events take the sliders' raw values (preprocess=False): Gradio's own check of a typed value
    past a slider's end ("Value 999 is greater than maximum value 49.") failed the event with a
    traceback in the log, and the share was never remembered; the value is clamped here instead, as
    the slider itself clamps it."""
    steps_range = (steps.minimum, steps.maximum)
    anchors = gr.State([float(s.value) / max(float(steps.value), 1.0) for s in indexed])

    def follow(n: Any, fractions: list[float]) -> Any:
        count = _number_in(n, *steps_range)
        updates = [gr.skip()] * len(fractions) if count is None else within_steps(count, *fractions)
        return updates[0] if len(updates) == 1 else updates  # Gradio takes a lone output's update bare

    def anchor(i: int) -> Callable[[Any, Any, list[float]], list[float]]:
        return lambda value, n, fractions: remember_share(i, value, n, fractions, steps_range)

    private = {"queue": False, "show_progress": "hidden", "api_visibility": "private", "preprocess": False}
    steps.change(follow, [steps, anchors], list(indexed), **private)
    for i, s in enumerate(indexed):
        s.input(anchor(i), [s, steps, anchors], anchors, **private)


def seed_row(info: ModelInfo, cls: type) -> gr.Number:
    with gr.Row(equal_height=True):
        # no precision=0: Gradio would round a typed 1.5 to 2 and run it without a word (make_config refuses it)
        # nor minimum=0: Gradio's own refusal ("Value -3 is less than minimum value 0.") does not name the box
        seed = gr.Number(value=studio_default(info, cls, "seed"), step=1, label="Seed", scale=4)
        dice = gr.Button("🎲 Randomise", scale=1, min_width=90, size="sm")
    dice.click(lambda: random.randint(0, 2**31 - 1), None, seed, queue=False, api_visibility="private")
    return seed


def howto(text: str) -> None:
    gr.Markdown(text, elem_classes="ss-howto")
