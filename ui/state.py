"""Per-browser-session state, kept in gr.State (Gradio deep-copies the initial value per session,
so sessions never see each other's inversions, searches or sweeps)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from editing.interface import InversionConfig
from editing.recipe import pixel_sha256


def image_key(image: np.ndarray) -> str:
    """Content hash of a picture: the cache key's stand-in for the image itself."""
    return pixel_sha256(image)[:16]


def inversion_key(image: np.ndarray, source_prompt: str, config: InversionConfig) -> tuple:
    """Everything that changes an inversion. preview_every only changes what is streamed, so it is left out;
    target prompt, T_skip and target guidance act after inversion, so they are not in the key either."""
    return (image_key(image), source_prompt, config.steps, config.eta, config.source_guidance_scale, config.seed)


@dataclass
class RunRecord:
    """What made a result, in the command line's terms (what `ui.recipe.save_run` writes beside it)."""

    method: str
    configs: dict[str, Any]
    prompts: dict[str, str]
    inputs: dict[str, np.ndarray]
    mode: str | None = None
    studio: dict[str, Any] = field(default_factory=dict)  # kept under the recipe's "studio", which replay reads only to explain
    batch: dict[str, Any] | None = None  # a sweep's batch (editing.recipe.batch_record), which replay re-runs to match to the bit


@dataclass
class SweepItem:
    image: np.ndarray
    value: float
    seed: int
    metrics: dict[str, float]
    label: str
    run: RunRecord | None = None
    files: list[str] | None = None  # written when the item is first selected


@dataclass
class Session:
    inversion_key: tuple | None = None
    inversion: Any = None  # the backend's opaque handle for inversion_key
    # Binary search over t0 (SDEdit paper, Sec. 5: the user says "more faithful" or "more realistic").
    search_guide: str | None = None  # image_key of the guide the interval belongs to
    search: tuple[float, float] = (0.0, 1.0)
    sweep: list[SweepItem] = field(default_factory=list)
    cross: list[SweepItem] = field(default_factory=list)  # Compare methods' results, in gallery order after the input
    selected: int | None = None  # index into sweep highlighted in the plot
    # the sweep plot's drawing settings as last sent (ui.compare.plot_updates): a change of them redraws it
    plot_props: dict[str, Any] | None = None
    stops: int = 0  # Stop presses: a run queued before the last one does nothing when its turn comes (ui.widgets.model_run)
    result: np.ndarray | None = None  # the last finished result (not a preview), which "Edit this result" puts on the canvas
