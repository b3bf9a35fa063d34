"""Slider specs and studio defaults, in one place.

The paper defaults live in the engine's config dataclasses (editing.interface); the studio reads
them from there. The only overrides are in STUDIO_DEFAULTS below, one row per model family.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from editing.interface import MODEL_STEP_FRACTIONS, InversionConfig, ModelInfo, config_fields, model_default, rescale_step


@dataclass(frozen=True)
class SliderSpec:
    minimum: float
    maximum: float
    step: float
    label: str
    info: str = ""


# The Composite tab's placement of its patch (the page's sliders and /composite's defaults), and its ranges.
PATCH_DEFAULTS: dict[str, float | bool] = {"patch_x": 0.5, "patch_y": 0.5, "patch_scale": 0.35, "cut_background": True}
PATCH_RANGES: dict[str, tuple[float, float]] = {"patch_x": (0.0, 1.0), "patch_y": (0.0, 1.0), "patch_scale": (0.05, 1.0)}

# Ranges mirror the configs' __post_init__ checks (narrowed to what is useful in a slider).
SLIDERS: dict[str, SliderSpec] = {
    "t0": SliderSpec(0.01, 1.0, 0.01, "t0 (strength)", "How much of the schedule is re-run: low = faithful, high = realistic"),
    "steps": SliderSpec(2, 1000, 1, "Steps", "Denoising steps for the whole schedule"),
    "repeats": SliderSpec(1, 10, 1, "Repeats K", "SDEdit's outer loop: perturb and denoise K times"),
    "guidance_scale": SliderSpec(0.0, 30.0, 0.5, "Guidance", "Classifier-free guidance of the prompt"),
    "source_guidance_scale": SliderSpec(0.0, 30.0, 0.5, "Source guidance", "Guidance while inverting"),
    "eta": SliderSpec(0.01, 1.0, 0.01, "η", "Noise level of the inversion (1 = DDPM)"),
    "skip": SliderSpec(0, 999, 1, "T_skip", "Steps skipped at the start: higher = closer to the input"),
    "strength": SliderSpec(0.0, 1.0, 0.05, "Colour strength", "Share of the colour pushed in (push into the predicted image)"),
    "alpha": SliderSpec(0.0, 1.0, 0.01, "α", "Per-step push (noise maps only)"),
    "t1": SliderSpec(0, 999, 1, "From step t1"),
    "t2": SliderSpec(0, 999, 1, "To step t2"),
    "dx": SliderSpec(-256, 256, 1, "Shift x (px of model space)"),
    "dy": SliderSpec(-256, 256, 1, "Shift y (px of model space)"),
    "seed": SliderSpec(0, 2**31 - 1, 1, "Seed"),
    "preview_every": SliderSpec(1, 50, 1, "Preview every k steps"),
}

# Stop takes effect between frames, so the studio asks every method for a frame every step (the
# configs' default, 5, suits scripts): Stop then cancels within one step. Previews are cheap
# (pixel models decode for free; latent models use a linear latent -> RGB map).
EVERY_STEP = {f"{c}.preview_every": 1 for c in ("SDEditConfig", "InversionConfig", "EditConfig", "ColorEditConfig", "ShiftConfig",
                                                "ImagicConfig")}  # fmt: skip

# 50 steps instead of 100, T_skip and t2 scaled to keep the paper's 36/100 and 60/100.
FIFTY_STEPS = {
    **EVERY_STEP,
    "SDEditConfig.steps": 50,
    "InversionConfig.steps": 50,
    "EditConfig.skip": 18,
    "ColorEditConfig.t2": 30,
}

# Per model family: overrides of the paper defaults ("Config.field") that make the studio pleasant
# on that model, plus the canvas side in pixels. The emoji model (pixel-text, 32 px) runs on a CPU,
# so it takes FIFTY_STEPS, as does Stable Diffusion (latent-sd). A model that names its text edits'
# T_skip (stroke_studio.json "recommended_edit_skip_fraction": the emoji model's 0, measured by
# docs/edit/edit_study.py) starts there, in the studio's steps, instead of at the paper's ratio.
STUDIO_DEFAULTS: dict[str, dict[str, Any]] = {
    # the Colour edit tab keeps the rest of the picture, and kept, strength 1.0 recolours fully without
    # the drift it brings otherwise (README, "Colour edit": share 0.82-0.92, outside 0.010-0.013)
    "pixel-text": {**FIFTY_STEPS, "ColorEditConfig.strength": 1.0, "canvas": 256},
    "pixel-ddpm": {**EVERY_STEP, "canvas": 256},
    "ve": {**EVERY_STEP, "canvas": 256},
    "latent-sd": {**FIFTY_STEPS, "canvas": 512},
}


def shift_units(info: ModelInfo) -> tuple[int, str]:
    """A shift's reach in model-space cells (a circular shift by the whole side is no move), and their unit:
    "px", or "latent cells of 8 px" on Stable Diffusion."""
    side = info.model_side or info.resolution
    cell = info.resolution // side
    return side - 1, "px" if cell == 1 else f"latent cells of {cell} px"


def studio_default(info: ModelInfo, config_cls: type, name: str) -> Any:
    """A field's starting value in the studio: the model's own default if it names one
    (`editing.interface.MODEL_DEFAULTS`; a T_skip fraction (`MODEL_STEP_FRACTIONS`) in the studio's
    steps), then the family override, else the paper default."""
    key = f"{config_cls.__name__}.{name}"
    steps = studio_default(info, InversionConfig, "steps") if key in MODEL_STEP_FRACTIONS else None
    own = model_default(info, config_cls, name, steps=steps)
    if own is not None:
        return own
    return STUDIO_DEFAULTS.get(info.family, {}).get(key, dict(config_fields(config_cls))[name])


def studio_step_default(info: ModelInfo, config_cls: type, name: str, steps: int) -> int:
    """A step index's studio default (T_skip, t1, t2) in an inversion of `steps` steps: the share of
    the schedule it has at the studio's own step count, as the sliders keep it when the steps move."""
    return rescale_step(studio_default(info, config_cls, name), studio_default(info, InversionConfig, "steps"), steps)


def canvas_side(info: ModelInfo) -> int:
    return STUDIO_DEFAULTS.get(info.family, {}).get("canvas", max(256, info.resolution))
