"""Unconditional pixel-space DDPMs in diffusers' DDPMPipeline/DDIMPipeline folder format.

    model_index.json   {"_class_name": "DDPMPipeline", ...}
    unet/              UNet2DModel on pixels in [-1, 1]
    scheduler/         DDPMScheduler (or DDIMScheduler) config: the training betas

e.g. google/ddpm-ema-church-256, -bedroom-256, -celebahq-256 (the SDEdit paper's LSUN and
CelebA-HQ domains). The network gets the continuous VP timestep as a float tensor:
`UNet2DModel.forward` only casts *Python* numbers to long, tensors keep their dtype.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from editing.models.base import pixels_to_tensor, tensor_to_pixels
from editing.models.common import DiffusersBundle, component_dir, frozen, to_eps, unet_side
from editing.schedule import VPSchedule


class PixelDDPMBundle(DiffusersBundle):
    family = "pixel-ddpm"

    def __init__(
        self,
        unet: torch.nn.Module,
        schedule: VPSchedule,
        *,
        model_id: str,
        weights_hash: str,
        resolution: int,
        prediction_type: str = "epsilon",
    ):
        self.unet = unet
        self.schedule = schedule
        self.model_id = model_id
        self.weights_hash = weights_hash
        self.resolution = int(resolution)
        self.prediction_type = prediction_type
        self.channels = int(unet.config.in_channels)

    @classmethod
    def from_folder(cls, folder: Path, *, model_id: str, weights_hash: str, device, dtype) -> PixelDDPMBundle:
        from diffusers import DDPMScheduler, UNet2DModel

        side = unet_side(folder, UNet2DModel.load_config(component_dir(folder, "unet")))
        unet = UNet2DModel.from_pretrained(component_dir(folder, "unet"), torch_dtype=dtype)
        # Any VP scheduler config (DDPM, DDIM) holds the training betas; DDPMScheduler rebuilds them.
        scheduler = DDPMScheduler.from_config(DDPMScheduler.load_config(component_dir(folder, "scheduler")))
        return cls(
            frozen(unet, device),
            VPSchedule.from_diffusers(scheduler),
            model_id=model_id,
            weights_hash=weights_hash,
            resolution=side,
            prediction_type=scheduler.config.prediction_type,
        )

    @property
    def conditional(self) -> bool:
        return False

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.resolution, self.resolution)

    @torch.no_grad()
    def encode_image(self, image: np.ndarray) -> torch.Tensor:
        return pixels_to_tensor(image, self.device, torch.float32)  # (1, 3, H, W) in [-1, 1]

    def decode(self, x: torch.Tensor) -> np.ndarray:
        return tensor_to_pixels(x)

    def encode_prompt(self, prompts: list[str]) -> None:
        return None

    def eps(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        x, t, _ = self._args(x_t, t, None)  # unconditional: cond is ignored
        out = self.unet(x, t).sample
        return to_eps(out, x_t, t, self.schedule, self.prediction_type)
