"""The model bundle: one small object per model family that turns any network into one call.

Samplers and methods see only this interface (k-diffusion's "external" wrappers): they never know
about text encoders, VAEs or UNet quirks.

- `encode_image(image)`: uint8 (H, W, 3) at the model's resolution -> model space (1, C, h, w)
- `decode(x)`: model space (B, C, h, w) -> uint8 (B, H, W, 3) (full quality; the VAE for latents)
- `preview(x)`: a cheap uint8 decode for streaming (a linear latent->RGB map for latents)
- `encode_prompt(prompts)`: list of str -> conditioning tensor (B, L, D), or None if unconditional
- `eps(x_t, t, cond)`: the noise prediction. `t` is a float tensor (B,): for VP models the
  continuous timestep of `editing.schedule.VPSchedule`; for VE models sigma. For VE models eps is
  -sigma * score, so x0 = x_t - sigma * eps in both kinds' own parametrisation.
- `clip_range`: the range of clean model-space samples ((-1, 1) VP pixels, (0, 1) VE pixels,
  None for latents); `recommended_guidance_scale`: the CFG scale a text model was tuned for;
  `recommended_edit_guidance_scale` and `recommended_edit_skip_fraction`: the target guidance and
  the T_skip (a fraction of the inversion's steps) its text edits were measured best at;
  `recommended_shift_skip_fraction`: the T_skip its image shifts were measured to need.

Bundles built on diffusers networks (`editing.models.common.DiffusersBundle`: every family that
`load_model` returns) also have `unet`, the frozen denoising network, and `replace(unet=...)`, a
shallow copy that runs another network (Imagic fine-tunes a copy, never the loaded model).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Literal

import numpy as np
import torch

from editing.interface import ModelInfo, PromptReading
from editing.schedule import VESchedule, VPSchedule

Family = Literal["pixel-text", "pixel-ddpm", "ve", "latent-sd"]


class ModelBundle(ABC):
    family: Family
    model_id: str  # what the user passed: preset name, folder or hub id
    weights_hash: str  # sha256 prefix of the weight files, for recipes and cache keys
    config_hash: str = ""  # sha256 prefix of the folder's JSON configs (load_model sets it), for recipes
    resolution: int  # image side in pixels
    schedule: VPSchedule | VESchedule
    # Range clean model-space samples live in (what x0 predictions may be clipped to): (-1, 1) for
    # VP pixel models, (0, 1) for VE score models (NCSN++ works on [0, 1] pixels), None (no
    # clipping) for latents and for bundles that do not declare one.
    clip_range: tuple[float, float] | None = None
    # Classifier-free guidance scale the model was tuned for (text-conditioned models), or None.
    recommended_guidance_scale: float | None = None
    # Target guidance of text edits (edit-friendly inversion) measured best on this model, or None (the paper's).
    recommended_edit_guidance_scale: float | None = None
    # T_skip of those text edits as a fraction of the inversion's steps, or None (the paper's 36 of 100).
    recommended_edit_skip_fraction: float | None = None
    # T_skip of image shifts as a fraction of the inversion's steps, or None (the paper's 0).
    recommended_shift_skip_fraction: float | None = None
    # The model folder's own word on it (pixel-text: stroke_studio.json "status"), "" when it has none.
    status: str = ""

    @property
    def kind(self) -> Literal["vp", "ve"]:
        return "ve" if isinstance(self.schedule, VESchedule) else "vp"

    @property
    @abstractmethod
    def conditional(self) -> bool: ...

    @property
    @abstractmethod
    def device(self) -> torch.device: ...

    @property
    @abstractmethod
    def dtype(self) -> torch.dtype: ...

    @property
    @abstractmethod
    def latent_shape(self) -> tuple[int, int, int]:
        """(C, h, w) of model space."""

    @abstractmethod
    def encode_image(self, image: np.ndarray) -> torch.Tensor: ...

    @abstractmethod
    def decode(self, x: torch.Tensor) -> np.ndarray: ...

    def preview(self, x: torch.Tensor) -> np.ndarray:
        return self.decode(x)

    @abstractmethod
    def encode_prompt(self, prompts: list[str]) -> torch.Tensor | None: ...

    def prompt_reading(self, prompt: str) -> PromptReading:
        """How the model reads `prompt`: the words its text encoder leaves out or does not know
        (unconditional models read none)."""
        return PromptReading(0)

    @abstractmethod
    def eps(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor: ...

    def info(self) -> ModelInfo:
        n = self.schedule.num_train_timesteps if isinstance(self.schedule, VPSchedule) else 1000
        return ModelInfo(self.model_id, self.family, self.resolution, self.conditional, self.kind, n,
                         status=self.status, recommended_guidance_scale=self.recommended_guidance_scale,
                         recommended_edit_guidance_scale=self.recommended_edit_guidance_scale,
                         recommended_edit_skip_fraction=self.recommended_edit_skip_fraction,
                         recommended_shift_skip_fraction=self.recommended_shift_skip_fraction,
                         weights_hash=self.weights_hash, config_hash=self.config_hash, device=str(self.device), dtype=str(self.dtype).removeprefix("torch."),
                         model_side=int(self.latent_shape[-1]))


def pixels_to_tensor(image: np.ndarray, device, dtype) -> torch.Tensor:
    """uint8 (H, W, 3) -> (1, 3, H, W) in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].to(device=device, dtype=torch.float32)
    return (x / 127.5 - 1.0).to(dtype)


def tensor_to_pixels(x: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] -> uint8 (B, H, W, 3), rounded."""
    x = ((x.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()
