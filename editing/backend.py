"""EngineBackend: the studio's Backend protocol (editing.interface) over the real engine.

A thin adapter: each method forwards to the engine function of the same name with the loaded
model bundle, so the UI never touches torch. Two optional capabilities the UI looks for with
hasattr: `sdedit_batch` (a t0 sweep as one batch, editing.sweep) and `imagic` (text-conditioned
families only). For the emoji model, `metrics` adds a realism score from the project's emoji encoder
when its weights are present (assets/models/emoji-encoder); otherwise it reports faithfulness only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
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
    PromptReading,
    SDEditConfig,
    ShiftConfig,
)


class EngineBackend:
    """The engine behind the studio, over one loaded ModelBundle."""

    def __init__(self, model: Any, encoder_path: str | Path | None = None):
        self.model = model  # editing.models.ModelBundle
        self._encoder_path = encoder_path  # None: the shipped assets/models/emoji-encoder
        self._realism: Callable[[list[np.ndarray]], list[float]] | None | bool = False  # False: not looked up yet
        if model.family not in IMAGIC_TEXT_FAMILIES:
            self.imagic = None  # unconditional models have no text embedding to optimise

    @classmethod
    def load(cls, name_or_path: str, device: str | None = None, dtype: str | None = None) -> EngineBackend:
        """Load a model by preset name, folder or hub id (editing.load_model picks device/dtype when
        None), with the fast path that benchmarks/README.md shows pays (editing.fastpath defaults)."""
        from editing.fastpath import accelerate
        from editing.models import load_model

        return cls(accelerate(load_model(name_or_path, device=device, dtype=dtype or None)))  # a name: load_model checks it

    def info(self) -> ModelInfo:
        return self.model.info()

    def prompt_reading(self, prompt: str) -> PromptReading:
        """How the model reads `prompt`: the words its text encoder leaves out or does not know."""
        return self.model.prompt_reading(prompt)

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

    def invert_etas(self, image: np.ndarray, source_prompt: str, configs: Sequence[InversionConfig]) -> Iterator[Frame]:
        """Inversions that differ only in eta (an eta sweep) from one set of model calls; the last Frame's result is a list."""
        from editing.inversion import invert_etas

        return invert_etas(self.model, image, source_prompt, configs)

    def edit_batch(self, inversion: Any, target_prompt: str, configs: Sequence[EditConfig]) -> Iterator[Frame]:
        """Several text edits in one batch, of one inversion (T_skip, guidance) or of one inversion per config
        (a list: an eta sweep); the last Frame's result is a list."""
        from editing.sweep import edit_sweep

        return edit_sweep(self.model, inversion, target_prompt, configs)

    def color_edit(self, inversion: Any, color: np.ndarray, mask: np.ndarray, prompt: str, config: ColorEditConfig) -> Iterator[Frame]:
        from editing.inversion import color_edit

        return color_edit(self.model, inversion, color, mask, prompt, config)

    def shift(self, inversion: Any, prompt: str, config: ShiftConfig) -> Iterator[Frame]:
        from editing.inversion import shift

        return shift(self.model, inversion, prompt, config)

    def metrics(self, guide: np.ndarray, images: list[np.ndarray], mask: np.ndarray | None = None) -> list[dict[str, float]]:
        """Faithfulness (SDEdit's L2 on [0, 1] pixels, SSIM; masked variants with a mask)."""
        from editing.metrics import faithfulness

        rows = faithfulness(guide, images, mask)
        scorer = self.realism_scorer()
        if scorer is not None and images:
            for row, r in zip(rows, scorer(images), strict=True):
                row["realism"] = r
        return rows

    def realism_scorer(self) -> Callable[[list[np.ndarray]], list[float]] | None:
        """Per-image realism for the emoji domain: the mean cosine similarity, in the emoji encoder's
        space, to the K = 10 nearest held-out emoji (a k-NN "looks like a real emoji" score; KID needs
        sets, not single images). None where there is no encoder or the model is not an emoji model."""
        if self._realism is False:
            self._realism = self._load_realism()
        return self._realism

    def _load_realism(self) -> Callable[[list[np.ndarray]], list[float]] | None:
        if self.model.family != "pixel-text":
            return None  # the encoder knows emoji only: its score means nothing for photos
        try:
            from editing.encoder import DEFAULT_PATH, load_encoder, reference_features
        except ImportError:
            return None
        path = Path(self._encoder_path or DEFAULT_PATH)
        if not (path / "model.safetensors").exists() or not (path / "reference_features.safetensors").exists():
            return None
        encoder, (ref, _) = load_encoder(path), reference_features(path)
        k = min(10, ref.shape[0])

        def score(images: list[np.ndarray]) -> list[float]:
            sims = encoder.embed_images(np.stack(images)) @ ref.T  # (B, N) cosines of unit vectors
            return sims.topk(k, dim=1).values.mean(dim=1).tolist()

        return score

