"""A deterministic numpy Backend for the studio's tests: no torch, no model, counted calls.

Its outputs follow simple rules the tests can check: SDEdit blends the guide towards a
seed-dependent pattern by t0 (only inside the mask); an edit tints the inverted image by a colour
derived from the target prompt, less so as T_skip grows.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from editing.interface import (
    ColorEditConfig,
    EditConfig,
    Frame,
    Guide,
    ImagicConfig,
    InversionConfig,
    ModelInfo,
    SDEditConfig,
    ShiftConfig,
    final,
)


def pattern(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def prompt_colour(prompt: str) -> np.ndarray:
    return np.frombuffer(hashlib.sha256(prompt.encode()).digest()[:3], np.uint8).astype(np.float32)


def blend(a: np.ndarray, b: np.ndarray, w: float) -> np.ndarray:
    return np.clip(np.rint(a.astype(np.float32) * (1 - w) + b.astype(np.float32) * w), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class FakeInversion:
    image: np.ndarray
    source_prompt: str
    config: InversionConfig


class FakeBackend:
    def __init__(self, step_delay: float = 0.0, family: str = "pixel-text", conditional: bool = True, kind: str = "vp"):
        self.calls: Counter[str] = Counter()
        self.step_delay = step_delay  # seconds per step, to test Stop
        self.steps_run = 0
        self._info = ModelInfo("fake", family, 32, conditional, kind, 1000)  # type: ignore[arg-type]

    def info(self) -> ModelInfo:
        return self._info

    def _frames(self, total: int, every: int, stage: str, start: np.ndarray, end: np.ndarray, result) -> Iterator[Frame]:
        for i in range(total):
            if self.step_delay:
                time.sleep(self.step_delay)
            self.steps_run += 1
            w = (i + 1) / total
            preview = (i + 1) % every == 0
            yield Frame(i + 1, total, stage, xt=blend(start, end, w) if preview else None, x0=end if preview else None)
        image = result if isinstance(result, np.ndarray) else None
        yield Frame(total, total, "done", image=image, result=result)

    def sdedit(self, guide: Guide, config: SDEditConfig, prompt: str = "") -> Iterator[Frame]:
        self.calls["sdedit"] += 1
        out = blend(guide.image, pattern(config.seed, guide.image.shape), config.t0)
        if prompt:
            out = blend(out, np.broadcast_to(prompt_colour(prompt), out.shape), 0.1)
        if guide.mask is not None:
            out = np.where(guide.mask[..., None], out, guide.image)
        total = math.ceil(config.t0 * config.steps) * config.repeats
        return self._frames(total, config.preview_every, "denoise", pattern(config.seed, guide.image.shape), out, out)

    def invert(self, image: np.ndarray, source_prompt: str, config: InversionConfig) -> Iterator[Frame]:
        self.calls["invert"] += 1
        inv = FakeInversion(image.copy(), source_prompt, config)
        return self._frames(config.steps, config.preview_every, "invert", image, pattern(config.seed, image.shape), inv)

    def edit(self, inversion: FakeInversion, target_prompt: str, config: EditConfig) -> Iterator[Frame]:
        self.calls["edit"] += 1
        steps = inversion.config.steps
        if config.skip >= steps:
            raise ValueError(f"skip={config.skip} must be < steps={steps}")
        tint = np.broadcast_to(prompt_colour(target_prompt), inversion.image.shape)
        out = blend(inversion.image, tint, 0.5 * (1 - config.skip / steps))
        return self._frames(steps - config.skip, config.preview_every, "denoise", inversion.image, out, out)

    def color_edit(self, inversion: FakeInversion, color: np.ndarray, mask: np.ndarray, prompt: str, config: ColorEditConfig) -> Iterator[Frame]:
        self.calls["color_edit"] += 1
        self.last_color_config = config
        out = np.where(mask[..., None], blend(inversion.image, color, config.strength), inversion.image)
        return self._frames(inversion.config.steps - config.skip, config.preview_every, "denoise", inversion.image, out, out)

    def shift(self, inversion: FakeInversion, prompt: str, config: ShiftConfig) -> Iterator[Frame]:
        self.calls["shift"] += 1
        out = np.roll(inversion.image, (config.dy, config.dx), axis=(0, 1))
        return self._frames(inversion.config.steps - config.skip, config.preview_every, "denoise", inversion.image, out, out)

    def metrics(self, guide: np.ndarray, images: list[np.ndarray], mask: np.ndarray | None = None, text: str = "",
                source_text: str = "") -> list[dict[str, float]]:  # fmt: skip
        self.calls["metrics"] += 1
        self.metrics_text = (text, source_text)
        g = guide.astype(np.float32) / 255
        out = []
        for im in images:
            d = (im.astype(np.float32) / 255 - g) ** 2
            out.append({"l2": float(np.sqrt(d.sum(axis=2)).mean()), "ssim": float(1 - d.mean())})
        return out


class FakeFullBackend(FakeBackend):
    """Also offers the optional capabilities: `sdedit_batch` (a t0 sweep as one batch), `edit_batch`
    (a T_skip sweep of one inversion, or an eta sweep's inversions, as one batch), `invert_etas` (an
    eta sweep's inversions from one set of model calls) and `imagic`."""

    def sdedit_batch(self, guide: Guide, configs: list[SDEditConfig], prompt: str = "") -> Iterator[Frame]:
        self.calls["sdedit_batch"] += 1
        results = [final(self.sdedit(guide, c, prompt)) for c in configs]
        self.calls["sdedit"] -= len(configs)  # counted as one batched call, not as single runs
        yield Frame(1, 1, "done", result=results)

    def invert_etas(self, image: np.ndarray, source_prompt: str, configs: list[InversionConfig]) -> Iterator[Frame]:
        self.calls["invert_etas"] += 1
        invs = [final(self.invert(image, source_prompt, c)) for c in configs]
        self.calls["invert"] -= len(configs)  # counted as one shared call, not as single inversions
        yield Frame(1, 1, "done", result=invs)

    def edit_batch(self, inversion, target_prompt: str, configs: list[EditConfig]) -> Iterator[Frame]:
        self.calls["edit_batch"] += 1
        invs = inversion if isinstance(inversion, list) else [inversion] * len(configs)
        results = [final(self.edit(inv, target_prompt, c)) for inv, c in zip(invs, configs, strict=True)]
        self.calls["edit"] -= len(configs)  # counted as one batched call, not as single runs
        yield Frame(1, 1, "done", result=results)

    def imagic(self, image: np.ndarray, target_prompt: str, config: ImagicConfig) -> Iterator[Frame]:
        self.calls["imagic"] += 1
        out = blend(image, np.broadcast_to(prompt_colour(target_prompt), image.shape), min(config.eta, 1.0))
        for stage, n in (("optimize", config.embedding_steps), ("finetune", config.finetune_steps)):
            for i in range(n):
                yield Frame(i + 1, n, stage, loss=1.0 / (i + 1))
        yield from self._frames(config.steps, config.preview_every, "denoise", pattern(config.seed, image.shape), out, out)
