"""The engine's torch-free interface: configs, frames, guides and the backend protocol.

`ui/` imports only this module (and `editing/__init__` keeps torch lazy), so the studio can be
tested with a fake backend and `import ui` never loads torch.

Defaults live here, once, with the paper they come from. Every config validates itself in
`__post_init__`: a bad value raises `ValueError` naming the allowed range.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field, fields
from typing import Any, Literal, NamedTuple, Protocol, runtime_checkable

import numpy as np

Stage = Literal["invert", "denoise", "optimize", "finetune", "done"]


def _check_range(name: str, value: float, lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    ok_lo = value > lo if lo_open else value >= lo
    ok_hi = value < hi if hi_open else value <= hi
    if not (ok_lo and ok_hi) or value != value:  # NaN fails too
        left = "(" if lo_open else "["
        right = ")" if hi_open else "]"
        raise ValueError(f"{name}={value!r} is out of range; allowed: {left}{lo}, {hi}{right}")


def _check_int(name: str, value: int, lo: int, hi: int) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise ValueError(f"{name} must be an integer in [{lo}, {hi}], got {value!r}")
    _check_range(name, int(value), lo, hi)


def check_config(config: Any, cls: type, method: str) -> Any:
    """`config` if it is a `cls`; a TypeError naming what `method` takes otherwise (another config
    class failed later on a missing attribute)."""
    if not isinstance(config, cls):
        raise TypeError(f"{method}: config must be {cls.__name__}, got {type(config).__name__}")
    return config


# --------------------------------------------------------------------------------------------
# Configs (frozen; the UI builds its sliders from these fields and their defaults)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SDEditConfig:
    """SDEdit (Meng et al., ICLR 2022): perturb the guide to time t0, then run the reverse SDE."""

    # t0 in (0, 1]: fraction of the schedule re-run. The paper's default for stroke-based
    # synthesis and editing is t0 = 0.5 (Sec. 4, "we use t0 = 0.5 unless stated otherwise").
    t0: float = 0.5
    # Reverse steps for the *whole* schedule (t0 = 1); a run takes ceil(t0 * steps) of them.
    # The official code runs every one of the 1000 training timesteps; 100 respaced ancestral
    # steps (improved-diffusion's respacing) are visually indistinguishable and 10x faster.
    steps: int = 100
    # K: the official code's repeat count (`--sample_step`): perturb-and-denoise K times,
    # each round starting from the previous round's output (Algorithm 1's outer loop).
    repeats: int = 1
    # VP sampler: "ddpm" is the reverse SDE (ancestral, eta=1) of the paper; "ddim" is the
    # deterministic probability-flow discretisation (eta=0), offered as a faster option.
    sampler: Literal["ddpm", "ddim"] = "ddpm"
    # Classifier-free guidance for text-conditioned models (ignored by unconditional ones).
    guidance_scale: float = 3.0
    seed: int = 0
    # Yield a preview frame every k steps (k >= 1); the final frame always comes.
    preview_every: int = 5

    def __post_init__(self) -> None:
        _check_range("t0", self.t0, 0.0, 1.0, lo_open=True)
        _check_int("steps", self.steps, 1, 1000)
        _check_int("repeats", self.repeats, 1, 10)
        if self.sampler not in ("ddpm", "ddim"):
            raise ValueError(f"sampler={self.sampler!r}; allowed: 'ddpm' or 'ddim'")
        _check_range("guidance_scale", self.guidance_scale, 0.0, 30.0)
        _check_int("seed", self.seed, 0, 2**63 - 1)
        _check_int("preview_every", self.preview_every, 1, 1000)


# InversionConfig.steps_per_call = 0 (auto): 20 rows per call with source guidance (the CFG pair),
# a 64x64-latent Stable Diffusion batch that any GPU able to run SD holds.
AUTO_STEPS_PER_CALL = 10


@dataclass(frozen=True)
class InversionConfig:
    """Edit-friendly DDPM inversion (Huberman-Spiegelglas et al., CVPR 2024), Sec. 3 / Alg. 1."""

    # Paper, Sec. 4: 100 inference steps, eta = 1, source guidance 3.5 (their SD experiments).
    steps: int = 100
    eta: float = 1.0
    source_guidance_scale: float = 3.5
    seed: int = 0
    preview_every: int = 5
    # Steps whose noise maps one model call extracts. The x_t are independent draws (eq. 6), so the
    # model calls of eq. (5) are independent too and run as one batch with per-row times: fewer,
    # larger calls (on the 2-core CPU the emoji model's 100-step inversion takes 2.0 s instead of
    # 4.5 s, benchmarks/README.md; a GPU at batch 2 is further from full use still). 1 is the reference code's order, and
    # regeneration under the source prompt then repeats the inversion's arithmetic to the bit; with
    # k > 1 it does so to rounding (the model saw x_t before the reference's float correction).
    # 0 = auto: AUTO_STEPS_PER_CALL.
    steps_per_call: int = 0
    # The first step whose noise map is extracted: an edit from T_skip never uses the maps of the
    # T_skip noisiest steps, so a one-shot edit need not compute them (the command line sets this to
    # its T_skip; LEdits++ inverts the same way). 0 = every map, which the studio keeps so that T_skip
    # can move without inverting again. The maps it does extract are a full inversion's, to rounding.
    first_step: int = 0

    def __post_init__(self) -> None:
        _check_int("steps", self.steps, 2, 1000)
        _check_int("steps_per_call", self.steps_per_call, 0, 1000)
        _check_int("first_step", self.first_step, 0, self.steps - 1)
        # eta = 0 leaves no noise to extract (z_t = (x_{t-1} - mu_t) / sigma_t divides by zero).
        _check_range("eta", self.eta, 0.0, 1.0, lo_open=True)
        _check_range("source_guidance_scale", self.source_guidance_scale, 0.0, 30.0)
        _check_int("seed", self.seed, 0, 2**63 - 1)
        _check_int("preview_every", self.preview_every, 1, 1000)


@dataclass(frozen=True)
class EditConfig:
    """Regeneration under a target prompt from the extracted noise maps."""

    # Paper, Sec. 4: T_skip = 36 (of 100 steps) and target guidance 15.
    skip: int = 36
    guidance_scale: float = 15.0
    preview_every: int = 5

    def __post_init__(self) -> None:
        _check_int("skip", self.skip, 0, 999)
        _check_range("guidance_scale", self.guidance_scale, 0.0, 30.0)
        _check_int("preview_every", self.preview_every, 1, 1000)


@dataclass(frozen=True)
class ColorEditConfig:
    """Colour manipulation through the edit-friendly noise maps (arXiv 2304.06140, the noise space's
    "color manipulation" property; implemented in `editing.inversion.color_edit`).

    While regenerating from the inversion, at the steps whose index i lies in [t1, t2] (counted from
    the noisiest step, as skip is; steps the run does not take are simply not affected), the colour
    image c is pushed in inside the mask B, in one of two ways:

    - mode "x0" (default): the predicted x0 is pulled towards c before the step's mean is formed,
      x0' = x0 + s B (c - x0). The per-step s compounds to `strength` over the k pulled steps,
      1 - (1 - s)^k = strength, so strength is the share of the colour difference pushed in and
      means the same at 50 or 100 steps (1 replaces x0 inside the mask). This equals adding
      sqrt(abar_prev) s B (c - x0) / sigma_i to the noise map z_i, so the rest of the trajectory follows.
    - mode "noise": the authors' code (github.com/inbarhub/DDPM_inversion, issue 3): with images
      on [0, 1] and B thresholded to a binary mask, z_i += alpha B (c - x0) at each pulled step.

    Measured on the emoji model (50 steps, t2 30; README, "Colour edit"): both recolour, but at
    equal colour change inside the mask, "noise" changes the rest of the image more (1.4 to 3.0 times
    on the shipped weights; docs/colour/colour-modes.json), and from alpha 0.1-0.2 the objects lose their shape (its push is largest at the
    noisiest steps). The defaults are the project's choices from that measurement; the paper shows the
    effect, not numbers: a 0.9 share over the first 60 % of the steps sets the colour while the last
    40 % restore texture and shading.

    keep_outside (not in the paper): after every step, the sample outside B is put back on the
    inversion's own trajectory, x_{i+1} <- B x_{i+1} + (1 - B) x_{i+1}^source (SDEdit's masked
    editing, applied to the stored x_t). The pull changes the model's input inside the mask, and
    through it eps everywhere; on a weak model the whole picture then drifts (a dab of blue on the
    emoji model turned a dark background teal). Kept, the rest of the picture is the source, exactly
    for a pixel model; the edge blends over the mask's soft coverage of the model grid.
    """

    strength: float = 0.9  # mode "x0": the share of (c - x0) pushed in over the pulled steps, in [0, 1]
    mode: Literal["x0", "noise"] = "x0"
    alpha: float = 0.05  # mode "noise": the authors' per-step push on the noise maps
    t1: int = 0  # first step (from the noisiest) that is pulled
    t2: int = 60  # last step that is pulled (inclusive)
    skip: int = 0  # steps skipped from the noisiest end, as EditConfig.skip
    guidance_scale: float = 3.5  # regeneration guidance; the inversion's source guidance reproduces the rest
    preview_every: int = 5
    keep_outside: bool = False  # put the sample outside the mask back on the source's trajectory every step

    def __post_init__(self) -> None:
        _check_range("strength", self.strength, 0.0, 1.0)
        if self.mode not in ("x0", "noise"):
            raise ValueError(f"mode={self.mode!r} is not one of: 'x0', 'noise'")
        _check_range("alpha", self.alpha, 0.0, 20.0)
        _check_int("t1", self.t1, 0, 999)
        _check_int("t2", self.t2, 0, 999)
        if self.t2 < self.t1:
            raise ValueError(f"t2={self.t2} must be >= t1={self.t1}")
        _check_int("skip", self.skip, 0, 999)
        if self.t2 < self.skip:
            raise ValueError(f"the colour steps t1..t2 = {self.t1}..{self.t2} end before T_skip={self.skip}, where the "
                             "regeneration starts: no step would take the colour, so nothing would change; lower T_skip "
                             "or raise t2")  # fmt: skip
        _check_range("guidance_scale", self.guidance_scale, 0.0, 30.0)
        _check_int("preview_every", self.preview_every, 1, 1000)
        if not isinstance(self.keep_outside, (bool, np.bool_)):
            raise ValueError(f"keep_outside must be True or False, got {self.keep_outside!r}")

    def pulled_steps(self, n: int) -> int:
        """How many steps of a regeneration from an n-step inversion the colour acts on."""
        return max(0, min(self.t2, n - 1) - max(self.t1, self.skip) + 1)  # regeneration runs steps skip..n-1


@dataclass(frozen=True)
class ShiftConfig:
    """Image shift (arXiv 2304.06140, the noise space's "image shifting" property; implemented in
    `editing.inversion.shift`): every noise map and the starting sample are rolled circularly
    (torch.roll) by dx columns and dy rows of model space (latent cells for latent models; positive
    = right / down), then the image is regenerated.
    """

    dx: int = 0
    dy: int = 0
    skip: int = 0
    guidance_scale: float = 3.5
    preview_every: int = 5

    def __post_init__(self) -> None:
        _check_int("dx", self.dx, -4096, 4096)
        _check_int("dy", self.dy, -4096, 4096)
        _check_int("skip", self.skip, 0, 999)
        _check_range("guidance_scale", self.guidance_scale, 0.0, 30.0)
        _check_int("preview_every", self.preview_every, 1, 1000)


# Imagic presets per model family: the fields `ImagicConfig.from_preset(name, family)` sets.
# "paper": Kawar et al., CVPR 2023 (arXiv 2210.09276), Sec. 4 and the appendix's Stable Diffusion
#   settings: embedding optimisation 1000 steps at lr 2e-3, then 1500 steps of full fine-tuning
#   at lr 5e-7, Adam, one image per step; eta ~ 0.7, classifier-free guidance 7.5, 50 DDIM steps.
# "fast": far fewer steps; a LoRA adapter on the attention layers where that suffices.
#   latent-sd: NOT measured here (no Stable Diffusion weights on the project's machines): common
#     LoRA fine-tuning settings for SD (rank 8, lr 2e-4, a few hundred steps).
#   pixel-text (the emoji model): chosen by trying on interim checkpoints of the emoji model
#     (README.md, "Imagic", has the figures; rms = eta-0 render vs the input on [0, 1] pixels).
#     Full fine-tuning, not LoRA: with one-token (pooled) text conditioning and attention only at
#     8x8 and 4x4, LoRA on the attention projections did not reconstruct the input (rms 0.34 at
#     lr 5e-3, 0.36 at 1e-3), full fine-tuning of the 3.5 M weights at lr 1e-4 did (0.135) at no
#     extra CPU time; lr 2e-4 gave 0.195, 5e-4 0.193 (noisy), 100 + 100 steps 0.255, 50 fine-tune
#     steps 0.31. Embedding lr 1e-3: at 1e-2 e_opt ends 2.05 |e_tgt| away from e_tgt (the
#     interpolation then leaves the text's neighbourhood), at 1e-3 0.64, same reconstruction.
_IMAGIC_PAPER: dict[str, Any] = dict(
    embedding_steps=1000, embedding_lr=2e-3, finetune_steps=1500, finetune_lr=5e-7, finetune_mode="full",
    batch_size=1, eta=0.7, guidance_scale=7.5, steps=50, sampler="ddim",
)
_IMAGIC_FAST: dict[str, dict[str, Any]] = {
    "pixel-text": dict(
        embedding_steps=150, embedding_lr=1e-3, finetune_steps=150, finetune_lr=1e-4, finetune_mode="full",
        lora_rank=8, batch_size=4, eta=0.7, guidance_scale=3.0, steps=50, sampler="ddim",
    ),
    "latent-sd": dict(
        embedding_steps=250, embedding_lr=2e-3, finetune_steps=400, finetune_lr=2e-4, finetune_mode="lora",
        lora_rank=8, batch_size=1, eta=0.7, guidance_scale=7.5, steps=50, sampler="ddim",
    ),
}
IMAGIC_TEXT_FAMILIES = ("pixel-text", "latent-sd")


@dataclass(frozen=True)
class ImagicConfig:
    """Imagic (Kawar et al., CVPR 2023): optimise the text embedding to the image (stage 1),
    fine-tune a copy of the model on it (stage 2), generate from eta * e_tgt + (1 - eta) * e_opt.

    The defaults are `ImagicConfig.from_preset("fast", "pixel-text")` (the embedded emoji model). Fields
    marked [opt] change the optimised state (and its cache key); the others only re-render it.
    """

    # Which preset these values came from (a label: `from_preset(name, family)` fills the fields).
    preset: Literal["fast", "paper"] = "fast"
    embedding_steps: int = _IMAGIC_FAST["pixel-text"]["embedding_steps"]  # [opt] stage 1 Adam steps
    embedding_lr: float = _IMAGIC_FAST["pixel-text"]["embedding_lr"]  # [opt]
    finetune_steps: int = _IMAGIC_FAST["pixel-text"]["finetune_steps"]  # [opt] stage 2 Adam steps
    finetune_lr: float = _IMAGIC_FAST["pixel-text"]["finetune_lr"]  # [opt]
    # [opt] "full": every UNet weight of a copy (the paper); "lora": peft LoRA on attention projections.
    finetune_mode: Literal["lora", "full"] = _IMAGIC_FAST["pixel-text"]["finetune_mode"]
    lora_rank: int = _IMAGIC_FAST["pixel-text"]["lora_rank"]  # [opt] LoRA r (alpha = r)
    # [opt] random timesteps (and noises) per Adam step; the paper uses one.
    batch_size: int = _IMAGIC_FAST["pixel-text"]["batch_size"]
    optimization_seed: int = 0  # [opt] timesteps, noises and LoRA init of stages 1-2
    # eta: 0 reconstructs the input, 1 follows the target text; the paper shows eta > 1 too.
    eta: float = _IMAGIC_FAST["pixel-text"]["eta"]
    guidance_scale: float = _IMAGIC_FAST["pixel-text"]["guidance_scale"]
    steps: int = _IMAGIC_FAST["pixel-text"]["steps"]  # sampling steps of stage 3
    # "ddim": deterministic (DDIM eta = 0, the paper); "ddpm": ancestral (DDIM eta = 1).
    sampler: Literal["ddim", "ddpm"] = _IMAGIC_FAST["pixel-text"]["sampler"]
    seed: int = 0  # stage 3's starting noise (and DDPM noises): a new seed re-renders only
    preview_every: int = 5  # stage 3 preview interval (steps)
    optimize_preview_every: int = 25  # stages 1-2: a reconstruction preview every k Adam steps
    gradient_checkpointing: bool = False  # [opt] on GPU: trade compute for activation memory
    # [opt] on CUDA: autocast bf16 where the GPU has it; otherwise (CPU, GPUs without bf16) float32
    mixed_precision: bool = True

    def __post_init__(self) -> None:
        if self.preset not in ("fast", "paper"):
            raise ValueError(f"preset={self.preset!r}; allowed: 'fast' or 'paper'")
        _check_int("embedding_steps", self.embedding_steps, 0, 100_000)
        _check_range("embedding_lr", self.embedding_lr, 0.0, 1.0, lo_open=True)
        _check_int("finetune_steps", self.finetune_steps, 0, 100_000)
        _check_range("finetune_lr", self.finetune_lr, 0.0, 1.0, lo_open=True)
        if self.finetune_mode not in ("lora", "full"):
            raise ValueError(f"finetune_mode={self.finetune_mode!r}; allowed: 'lora' or 'full'")
        _check_int("lora_rank", self.lora_rank, 1, 512)
        _check_int("batch_size", self.batch_size, 1, 64)
        _check_int("optimization_seed", self.optimization_seed, 0, 2**63 - 1)
        _check_range("eta", self.eta, 0.0, 1.5)
        _check_range("guidance_scale", self.guidance_scale, 0.0, 30.0)
        _check_int("steps", self.steps, 1, 1000)
        if self.sampler not in ("ddim", "ddpm"):
            raise ValueError(f"sampler={self.sampler!r}; allowed: 'ddim' or 'ddpm'")
        _check_int("seed", self.seed, 0, 2**63 - 1)
        _check_int("preview_every", self.preview_every, 1, 1000)
        _check_int("optimize_preview_every", self.optimize_preview_every, 1, 100_000)
        for name in ("gradient_checkpointing", "mixed_precision"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")

    @classmethod
    def preset_values(cls, name: str, family: str = "pixel-text") -> dict[str, Any]:
        """The fields preset `name` sets for a model family (ValueError for unknown names/families)."""
        if name not in ("fast", "paper"):
            raise ValueError(f"preset={name!r}; allowed: 'fast' or 'paper'")
        if family not in IMAGIC_TEXT_FAMILIES:
            raise ValueError(f"Imagic needs a text-conditioned model family; allowed: {', '.join(IMAGIC_TEXT_FAMILIES)}, got {family!r}")
        return {"preset": name, **(_IMAGIC_PAPER if name == "paper" else _IMAGIC_FAST[family])}

    @classmethod
    def from_preset(cls, name: str, family: str = "pixel-text", **overrides: Any) -> ImagicConfig:
        """The config of preset `name` ("fast" or "paper") for a model family, with overrides.

        (Not called `preset`: that is the field recording which preset a config came from.)
        """
        return cls(**{**cls.preset_values(name, family), **overrides})

    def for_family(self, family: str, given: Collection[str] | None = None) -> ImagicConfig:
        """This config with the fields the user did not set taken from `from_preset(self.preset, family)`.

        What the command line does with `--preset paper --model sd15 --eta 0.9`: the flags the user
        gave (`given`, field names) win, the rest come from the preset. Without `given`, a field still
        at its class default counts as not set (so one set explicitly to that value takes the
        preset's). Idempotent.
        """
        default = type(self)()
        preset = self.preset_values(self.preset, family)

        def unset(name: str) -> bool:
            return name not in given if given is not None else getattr(self, name) == getattr(default, name)

        return type(self)(**{f.name: preset[f.name] if f.name in preset and unset(f.name) else getattr(self, f.name) for f in fields(self)})


def config_fields(config_cls: type) -> list[tuple[str, Any]]:
    """(name, default) of a config dataclass, in declaration order: what the UI builds sliders from."""
    return [(f.name, f.default) for f in fields(config_cls)]


# --------------------------------------------------------------------------------------------
# Values that flow between the UI and the engine
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Guide:
    """What the user painted: an RGB image, an optional edit mask and an optional colour mask.

    image: (H, W, 3) uint8. mask: (H, W) bool, True where SDEdit may change pixels; None means
    everywhere. color_mask: (H, W) bool, the region a colour edit applies to.
    """

    image: np.ndarray
    mask: np.ndarray | None = None
    color_mask: np.ndarray | None = None

    def __post_init__(self) -> None:
        img = self.image
        if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError("Guide.image must be a uint8 array of shape (H, W, 3)")
        for name in ("mask", "color_mask"):
            m = getattr(self, name)
            if m is not None and (not isinstance(m, np.ndarray) or m.shape != img.shape[:2]):
                raise ValueError(f"Guide.{name} must be an (H, W) array matching the image, got {getattr(m, 'shape', m)}")


class PromptReading(NamedTuple):
    """How a model's text encoder reads a prompt (`ModelBundle.prompt_reading`): encoders read a fixed number
    of tokens and drop the rest without a word, and read words they do not know as one unknown token."""

    tokens: int  # the content tokens it reads (0: the model reads no prompt)
    left_out: str = ""  # the words past them, "" when every word is read
    unknown: tuple[str, ...] = ()  # words it does not know (emoji, other scripts): read as an unknown token

    def notices(self, what: str = "the prompt") -> list[str]:
        """One sentence per problem, for the studio's status line and the command line's warnings."""
        out = []
        if self.left_out:
            words = self.left_out.split()
            shown = self.left_out if len(words) <= 12 else " ".join(words[:12]) + f" … ({len(words)} words)"
            out.append(f"This model reads the first {self.tokens} tokens of a prompt: \"{shown}\" at the end of "
                       f"{what} is left out.")  # fmt: skip
        if self.unknown:
            shown = " ".join(self.unknown[:5]) + (" …" if len(self.unknown) > 5 else "")
            out.append(f"This model's text encoder does not know {shown} (in {what}): it reads English words.")
        return out


@dataclass(frozen=True)
class Frame:
    """One streamed update of a running method.

    step/total count the method's steps (total = steps it will take). xt and x0 are cheap uint8
    (h, w, 3) previews of the current sample and of the predicted clean image, at the model's square
    resolution (not the input's size or aspect: the result is); either may be None between previews.
    On the last frame `stage == "done"`, `result` is the method's result (a uint8 image, or an
    `Inversion` / `ImagicState` value) and `image` the uint8 image if any.
    """

    step: int
    total: int
    stage: Stage = "denoise"
    xt: np.ndarray | None = None
    x0: np.ndarray | None = None
    image: np.ndarray | None = None
    result: Any = None
    loss: float | None = None
    info: dict = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.stage == "done"


def final(frames: Iterable[Frame]) -> Any:
    """Drain a method's frames and return its result (a uint8 image for image methods)."""
    last = None
    for frame in frames:
        last = frame
    if last is None or not last.done:
        raise RuntimeError("the method stopped before producing a result")
    return last.result


@dataclass(frozen=True)
class ModelInfo:
    name: str  # preset name, folder or hub id as given
    family: Literal["pixel-text", "pixel-ddpm", "ve", "latent-sd"]
    resolution: int  # image side the model works at, in pixels
    conditional: bool  # takes prompts
    kind: Literal["vp", "ve"]
    num_train_timesteps: int
    status: str = ""  # the model folder's own word on it (stroke_studio.json "status"), e.g. "interim, CPU-trained"
    recommended_guidance_scale: float | None = None  # the CFG scale a text model was tuned for, if it says
    recommended_edit_guidance_scale: float | None = None  # the target guidance its text edits were measured best at
    recommended_edit_skip_fraction: float | None = None  # their T_skip as a fraction of the inversion's steps, likewise
    recommended_shift_skip_fraction: float | None = None  # image shift's T_skip as a fraction of the steps, measured likewise
    weights_hash: str = ""  # sha256 prefix of the weight files (recipes record it; replay compares it)
    config_hash: str = ""  # sha256 prefix of its JSON configs: scheduler, prediction type... (likewise)
    device: str = ""  # where it runs ("cpu", "cuda:0"), as recipes record it
    dtype: str = ""  # "float32", "float16", "bfloat16"
    model_side: int = 0  # side of model space, where shifts are counted: pixels, or latent cells (0: not known)


# Config fields whose default the model itself may set: "Config.field" -> the ModelInfo attribute.
# SDEdit's guidance follows the scale the model was tuned for (the emoji card chose it by held-out
# figures); a text edit's target guidance follows the model's own measured value where it names one
# (the emoji model: docs/edit), else the paper's 15. The studio and the CLI both read this.
MODEL_DEFAULTS: dict[str, str] = {
    "SDEditConfig.guidance_scale": "recommended_guidance_scale",
    "EditConfig.guidance_scale": "recommended_edit_guidance_scale",
}
# Step counts the model names as a fraction of the schedule's steps ("Config.field" -> attribute):
# a text edit's T_skip (the paper's is 36 of 100; the emoji model's, measured, 0) and an image
# shift's (the paper's 0; a model trained on centred pictures pulls a shift started from pure noise
# back to the middle: docs/shift), turned into whole steps of the inversion actually run
# (`model_default(..., steps=)`).
MODEL_STEP_FRACTIONS: dict[str, str] = {
    "EditConfig.skip": "recommended_edit_skip_fraction",
    "ShiftConfig.skip": "recommended_shift_skip_fraction",
}


# Step-indexed fields (counted from the noisiest step of the inversion) whose paper defaults are
# for the inversion's default 100 steps: left unset with other steps, they keep their share of the
# schedule (the paper's T_skip 36 of 100 is 18 of 50), as the studio's sliders do.
PAPER_STEP_FIELDS: tuple[str, ...] = ("EditConfig.skip", "ShiftConfig.skip", "ColorEditConfig.t1", "ColorEditConfig.t2",
                                      "ColorEditConfig.skip")  # fmt: skip


def rescale_step(value: int, of_steps: int, steps: int) -> int:
    """A step index set for a schedule of `of_steps` steps, at the same share of one of `steps`."""
    return int(value) if int(steps) == int(of_steps) else step_of_fraction(value / of_steps, steps)


def paper_step_default(config_cls: type, name: str, steps: int | None) -> int | None:
    """A PAPER_STEP_FIELDS default in an inversion of `steps` steps (None for other fields)."""
    if f"{config_cls.__name__}.{name}" not in PAPER_STEP_FIELDS or steps is None:
        return None
    return rescale_step(dict(config_fields(config_cls))[name], InversionConfig.steps, steps)


def check_skip_fraction(value: float | None, name: str) -> float | None:
    """A T_skip as a model folder names it (a value of MODEL_STEP_FRACTIONS), None or a fraction of
    the steps in [0, 1); `name` is what the message calls it."""
    if value is not None and not (isinstance(value, (int, float)) and 0 <= value < 1):
        raise ValueError(f"{name}={value}; allowed: 0 <= value < 1 (T_skip / inversion steps)")
    return value


def step_of_fraction(fraction: float, steps: float) -> int:
    """A share of the schedule as a whole step index: fraction x steps rounded half up, within
    0..steps-1 (a T_skip the engine accepts). Model defaults and the studio's step sliders use it."""
    n = max(int(steps), 1)
    return min(int(fraction * n + 0.5), n - 1)


def model_default(info: ModelInfo | None, config_cls: type, name: str, steps: int | None = None) -> Any:
    """The model's own default for a config field, or None where it sets none. A field the model
    names as a fraction of the steps (`MODEL_STEP_FRACTIONS`) needs `steps`, the inversion's steps
    (`step_of_fraction`)."""
    key = f"{config_cls.__name__}.{name}"
    if info is None:
        return None
    if key in MODEL_STEP_FRACTIONS:
        frac = getattr(info, MODEL_STEP_FRACTIONS[key])
        if frac is None or steps is None:
            return None
        return step_of_fraction(frac, steps)
    attr = MODEL_DEFAULTS.get(key)
    return getattr(info, attr) if attr is not None else None


def config_for(model: Any, config_cls: type, inversion_steps: int | None = None, **values: Any) -> Any:
    """A config with the defaults the command line and the studio use: `values` as given, then the
    model's own default where it names one (`MODEL_DEFAULTS`, `MODEL_STEP_FRACTIONS`), then the
    paper's, a step index (`PAPER_STEP_FIELDS`) at its share of an inversion of `inversion_steps`.

    The dataclasses alone hold the papers' values: `SDEditConfig()` guides at 3.0 where the emoji
    model recommends 1.0, and `EditConfig()` skips 36 steps, of the paper's 100. `model` is a loaded
    model (its `info()` is read), a `ModelInfo` or None; `inversion_steps` is `inversion.steps`,
    for the configs that index its steps (T_skip, t1, t2). A value of None counts as not given."""
    info = model if model is None or isinstance(model, ModelInfo) else model.info()
    kw = {}
    for name, _ in config_fields(config_cls):
        value = values.pop(name, None)
        value = model_default(info, config_cls, name, steps=inversion_steps) if value is None else value
        value = paper_step_default(config_cls, name, inversion_steps) if value is None else value
        if value is not None:
            kw[name] = value
    if values:
        raise TypeError(f"{config_cls.__name__} has no field {next(iter(values))!r}")
    return config_cls(**kw)


@runtime_checkable
class Backend(Protocol):
    """What the studio needs from the engine; `editing.backend.EngineBackend` implements it.

    Every method is a generator of `Frame`; the last frame carries the result. Handles returned
    by `invert` are opaque to the UI (kept in `gr.State`).
    """

    def info(self) -> ModelInfo: ...

    def sdedit(self, guide: Guide, config: SDEditConfig, prompt: str = "") -> Iterator[Frame]: ...

    def invert(self, image: np.ndarray, source_prompt: str, config: InversionConfig) -> Iterator[Frame]: ...

    def edit(self, inversion: Any, target_prompt: str, config: EditConfig) -> Iterator[Frame]: ...

    def color_edit(self, inversion: Any, color: np.ndarray, mask: np.ndarray, prompt: str, config: ColorEditConfig) -> Iterator[Frame]: ...

    def shift(self, inversion: Any, prompt: str, config: ShiftConfig) -> Iterator[Frame]: ...

    def imagic(self, image: np.ndarray, target_prompt: str, config: ImagicConfig) -> Iterator[Frame]: ...

    def metrics(self, guide: np.ndarray, images: list[np.ndarray], mask: np.ndarray | None = None, text: str = "",
                source_text: str = "") -> list[dict[str, float]]:  # fmt: skip
        """One row per image: "l2" and "ssim" to the guide; "realism", given the text the image should show
        "alignment", and given a text edit's source text "alignment_gain", where the backend scores them."""
        ...
