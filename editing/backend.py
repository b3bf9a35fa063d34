"""EngineBackend: the studio's Backend protocol (editing.interface) over the real engine.

A thin adapter: each method forwards to the engine function of the same name with the loaded
model bundle, so the UI never touches torch. Two optional capabilities the UI looks for with
hasattr: `sdedit_batch` (a t0 sweep as one batch, editing.sweep) and `imagic` (text-conditioned
families only). Realism scores come from the project's emoji encoder when editing/encoder.py has
landed; until then `metrics` reports faithfulness only.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from editing.interface import (
    IMAGIC_TEXT_FAMILIES,
    ColorEditConfig,
    EditConfig,
    Frame,
    Guide,
    ImagicConfig,
    InversionConfig,
    ModelInfo,
    SDEditConfig,
    ShiftConfig,
)


class EngineBackend:
    """The engine behind the studio, over one loaded ModelBundle."""

    def __init__(self, model: Any):
        self.model = model  # editing.models.ModelBundle
        if model.family not in IMAGIC_TEXT_FAMILIES:
            self.imagic = None  # unconditional models have no text embedding to optimise

    @classmethod
    def load(cls, name_or_path: str, device: str | None = None, dtype: str | None = None) -> EngineBackend:
        """Load a model by preset name, folder or hub id (editing.load_model picks device/dtype when None)."""
        import torch

        from editing.models import load_model

        torch_dtype = getattr(torch, dtype) if dtype else None
        if dtype and not isinstance(torch_dtype, torch.dtype):
            raise ValueError(f"--dtype {dtype!r} is not a torch dtype; use float32, float16 or bfloat16")
        return cls(load_model(name_or_path, device=device, dtype=torch_dtype))

    def info(self) -> ModelInfo:
        return self.model.info()

    def sdedit(self, guide: Guide, config: SDEditConfig, prompt: str = "") -> Iterator[Frame]:
        from editing.sdedit import sdedit

        return sdedit(self.model, guide, config, prompt=prompt)

    def sdedit_batch(self, guide: Guide, configs: Sequence[SDEditConfig], prompt: str = "") -> Iterator[Frame]:
        """Several SDEdit configs in one batch through the model; the last Frame's result is a list."""
        from editing.sweep import sdedit_sweep

        return sdedit_sweep(self.model, guide, configs, prompt=prompt)

    def imagic(self, image: np.ndarray, target_prompt: str, config: ImagicConfig) -> Iterator[Frame]:
        """Imagic end to end; its optimised state is cached by content (image, text, model, settings),
        so moving η or the seed re-renders without optimising again."""
        from editing.imagic import imagic

        return imagic(self.model, image, target_prompt, config)

    def invert(self, image: np.ndarray, source_prompt: str, config: InversionConfig) -> Iterator[Frame]:
        from editing.inversion import invert

        return invert(self.model, image, source_prompt, config)

    def edit(self, inversion: Any, target_prompt: str, config: EditConfig) -> Iterator[Frame]:
        from editing.inversion import edit

        return edit(self.model, inversion, target_prompt, config)

    def color_edit(self, inversion: Any, color: np.ndarray, mask: np.ndarray, prompt: str, config: ColorEditConfig) -> Iterator[Frame]:
        from editing.inversion import color_edit

        return color_edit(self.model, inversion, color, mask, prompt, config)

    def shift(self, inversion: Any, prompt: str, config: ShiftConfig) -> Iterator[Frame]:
        from editing.inversion import shift

        return shift(self.model, inversion, prompt, config)

    def metrics(self, guide: np.ndarray, images: list[np.ndarray], mask: np.ndarray | None = None) -> list[dict[str, float]]:
        """Faithfulness (SDEdit's L2 on [0, 1] pixels, SSIM; masked variants with a mask)."""
        from editing.metrics import faithfulness

        return faithfulness(guide, images, mask)

