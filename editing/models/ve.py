"""VE score models (NCSN++, Song et al. 2021) in diffusers' ScoreSdeVePipeline folder format.

    model_index.json   {"_class_name": "ScoreSdeVePipeline", ...}
    unet/              UNet2DModel with time_embedding_type "fourier" (fed sigma itself)
    scheduler/         ScoreSdeVeScheduler config: sigma_min, sigma_max

e.g. google/ncsnpp-celebahq-256 (the SDEdit paper's VE model).

Units: `t` passed to `eps` is sigma. `UNet2DModel.forward` with fourier embeddings already
divides its output by sigma (step 6 of its forward), so `unet(x, sigma).sample` is the score
grad log p_sigma(x) and eps = -sigma * score, giving x0 = x - sigma * eps = x + sigma^2 score.

Pixel range: these models work on pixels in [0, 1] (ScoreSdeVePipeline returns
`sample_mean.clamp(0, 1)`; a config with center_input_sample recentres inside the network), so
this bundle's model space is [0, 1], and `clip_range` says so.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from editing.models.base import tensor_to_pixels
from editing.models.common import DiffusersBundle, component_dir, frozen, unet_side
from editing.schedule import VESchedule


class VEBundle(DiffusersBundle):
    family = "ve"
    clip_range = (0.0, 1.0)

    def __init__(self, unet: torch.nn.Module, schedule: VESchedule, *, model_id: str, weights_hash: str, resolution: int):
        self.unet = unet
        self.schedule = schedule
        self.model_id = model_id
        self.weights_hash = weights_hash
        self.resolution = int(resolution)
        self.channels = int(unet.config.in_channels)

    @classmethod
    def from_folder(cls, folder: Path, *, model_id: str, weights_hash: str, device, dtype) -> VEBundle:
        from diffusers import ScoreSdeVeScheduler, UNet2DModel

        side = unet_side(folder, UNet2DModel.load_config(component_dir(folder, "unet")))
        unet = UNet2DModel.from_pretrained(component_dir(folder, "unet"), torch_dtype=torch.float32)
        if unet.config.time_embedding_type != "fourier":
            raise ValueError(
                f"{folder}: a VE score model needs a UNet2DModel with fourier time embedding (fed sigma), "
                f"got time_embedding_type={unet.config.time_embedding_type!r}"
            )
        # The Fourier features' frequencies (N(0, 16^2) by default) stay float32: in float16 they are
        # rounded by up to 0.03, a phase error of up to 0.5 rad at the ends of the sigma range
        # (log 348 = 5.9), which made a half-precision eps 10x less accurate there. The features are
        # computed in float32 and cast to the network's dtype by diffusers (`t_emb.to(self.dtype)`).
        # (torch's Module.to: diffusers' own override warns about modules to keep in float32, which
        # is what this does.)
        fourier = unet.time_proj.weight.data
        unet = torch.nn.Module.to(unet, dtype)
        unet.time_proj.weight.data = fourier
        scheduler = ScoreSdeVeScheduler.from_pretrained(component_dir(folder, "scheduler"))
        return cls(
            frozen(unet, device),
            VESchedule.from_diffusers(scheduler),
            model_id=model_id,
            weights_hash=weights_hash,
            resolution=side,
        )

    @property
    def conditional(self) -> bool:
        return False

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.resolution, self.resolution)

    @torch.no_grad()
    def encode_image(self, image: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].to(self.device, torch.float32)
        return x / 255.0  # (1, 3, H, W) in [0, 1]

    def decode(self, x: torch.Tensor) -> np.ndarray:
        return tensor_to_pixels(x.detach().float() * 2.0 - 1.0)

    def encode_prompt(self, prompts: list[str]) -> None:
        return None

    def eps(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        x, sigma, _ = self._args(x_t, t, None)  # t is sigma; unconditional
        score = self.unet(x, sigma).sample.float()
        return -sigma.view(-1, 1, 1, 1) * score
