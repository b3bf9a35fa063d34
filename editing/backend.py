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
        self._scorer: Callable[[list[np.ndarray], str, str], list[dict[str, float]]] | None | bool = False  # False: not looked up yet
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

    def metrics(self, guide: np.ndarray, images: list[np.ndarray], mask: np.ndarray | None = None, text: str = "",
                source_text: str = "") -> list[dict[str, float]]:  # fmt: skip
        """Faithfulness (SDEdit's L2 on [0, 1] pixels, SSIM; masked variants with a mask); on an emoji
        model, realism and, given `text` (the prompt the images should show), alignment, and given the
        `source_text` a text edit started from, the alignment gain (`emoji_scores`)."""
        from editing.metrics import faithfulness

        rows = faithfulness(guide, images, mask)
        if self._scorer is False:
            self._scorer = self._load_scorer()
        if self._scorer is not None and images:
            for row, scores in zip(rows, self._scorer(images, text, source_text), strict=True):
                row.update(scores)
        return rows

    def _load_scorer(self) -> Callable[[list[np.ndarray], str, str], list[dict[str, float]]] | None:
        """`emoji_scores` on the shipped (or given) emoji encoder; None where there is no encoder or the
        model is not an emoji model (the encoder knows emoji only: its scores mean nothing for photos)."""
        if self.model.family != "pixel-text":
            return None
        try:
            from editing.encoder import DEFAULT_PATH, load_encoder, reference_features
        except ImportError:
            return None
        path = Path(self._encoder_path or DEFAULT_PATH)
        if not (path / "model.safetensors").exists() or not (path / "reference_features.safetensors").exists():
            return None
        encoder, (ref, _) = load_encoder(path), reference_features(path)
        return lambda images, text, source_text: emoji_scores(encoder, ref, images, text, source_text)


def emoji_scores(encoder: Any, reference: Any, images: list[np.ndarray], text: str = "", source_text: str = "",
                 k: int = 10) -> list[dict[str, float]]:  # fmt: skip
    """Per image, in the emoji encoder's space: "realism", the mean cosine similarity to the k nearest
    reference (held-out) emoji, a k-NN "looks like a real emoji" score (KID needs sets, not single
    images); and with a text, "alignment", the cosine between the image's and the text's embeddings
    (the encoder was trained so that an emoji and its caption meet): the role CLIP score plays in the
    inversion and Imagic papers' figures. Alignment ranks results for one text; its values are small
    (about 0.1 to 0.5). With the source text of a text edit, "alignment_gain": alignment to the text
    minus alignment to the source, how far the result moved from what the picture was towards what it
    should become (on the emoji model it follows T_skip where alignment alone barely moves)."""
    feats = encoder.embed_images(np.stack(images))  # (B, 384), unit vectors
    realism = (feats @ reference.T).topk(min(k, reference.shape[0]), dim=1).values.mean(dim=1).tolist()
    rows = [{"realism": r} for r in realism]
    if text.strip():
        texts = [text, source_text] if source_text.strip() else [text]
        sims = (feats @ encoder.embed_texts(texts).T).tolist()
        for row, sim in zip(rows, sims, strict=True):
            row["alignment"] = sim[0]
            if len(sim) == 2:
                row["alignment_gain"] = sim[0] - sim[1]
    return rows

