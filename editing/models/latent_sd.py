"""Latent text-to-image models: Stable Diffusion 1.x/2.x in diffusers' StableDiffusionPipeline format.

    model_index.json   {"_class_name": "StableDiffusionPipeline", ...}
    vae/               AutoencoderKL (image <-> latents; scale read from vae.config.scaling_factor)
    text_encoder/      CLIPTextModel (conditioning = last_hidden_state, (B, 77, D))
    tokenizer/         CLIPTokenizer (padded to max_length, as the pipeline does)
    unet/              UNet2DConditionModel on scaled latents
    scheduler/         any VP scheduler config (its betas and prediction_type)

Model space is the *scaled* latent z = (E(x).mean - shift) * scaling_factor, shape
(4, H/f, W/f) with f = 2 ** (len(vae.config.block_out_channels) - 1) (8 for SD). `eps` returns
eps for "epsilon" models and converts "v_prediction" (SD 2.x 768 px) with the schedule.
`preview` is a linear latent->RGB map (no VAE), upsampled by f with nearest neighbour.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from editing.interface import PromptReading
from editing.models.base import pixels_to_tensor, tensor_to_pixels
from editing.models.common import DiffusersBundle, check_prompts, frozen, prompt_reading, quiet_loading, to_eps, unet_side
from editing.schedule import VPSchedule

# SD 1.x/2.x latent -> RGB approximation (rows: latent channels; the widely used factors of the
# SD web UIs' "approx" previews), applied to scaled latents, giving roughly [-1, 1] RGB.
LATENT_RGB_FACTORS = torch.tensor(
    [
        [0.3512, 0.2297, 0.3227],
        [0.3250, 0.4974, 0.2350],
        [-0.2829, 0.1762, 0.2721],
        [-0.2120, -0.2616, -0.7177],
    ]
)


class LatentSDBundle(DiffusersBundle):
    family = "latent-sd"
    clip_range = None  # latents have no fixed range

    def __init__(
        self,
        unet,
        vae,
        text_encoder,
        tokenizer,
        schedule: VPSchedule,
        *,
        model_id: str,
        weights_hash: str,
        prediction_type: str = "epsilon",
    ):
        self.unet = unet
        self.vae = vae
        self.text_encoder = text_encoder
        self.tokenizer = tokenizer
        self.schedule = schedule
        self.model_id = model_id
        self.weights_hash = weights_hash
        self.prediction_type = prediction_type
        self.scaling_factor = float(vae.config.scaling_factor)
        self.shift_factor = float(getattr(vae.config, "shift_factor", None) or 0.0)
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1)
        self.latent_channels = int(unet.config.in_channels)
        self.resolution = unet_side(model_id, unet.config, channels=None) * self.vae_scale_factor

    # The scale Stable Diffusion's own samplers and diffusers' pipelines (txt2img and img2img) default
    # to; SDEdit follows it (editing.interface.MODEL_DEFAULTS) unless the user sets one.
    recommended_guidance_scale = 7.5

    @classmethod
    def from_folder(cls, folder: Path, *, model_id: str, weights_hash: str, device, dtype) -> LatentSDBundle:
        from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
        from transformers import CLIPTextModel, CLIPTokenizer

        unet_config = UNet2DConditionModel.load_config(folder / "unet")
        unet_side(folder, unet_config, channels=None)  # before the weights load
        unet_in = unet_config.get("in_channels", 4)
        vae_config = AutoencoderKL.load_config(folder / "vae")
        latent_ch = vae_config.get("latent_channels", 4)
        if unet_in != latent_ch:  # inpainting (9) and upscaling (7) UNets take extra input channels
            raise ValueError(
                f"'{folder}': the UNet takes {unet_in} input channels but the VAE makes {latent_ch}-channel latents "
                "(an inpainting or upscaling model); only text-to-image Stable Diffusion models are supported."
            )
        unet = UNet2DConditionModel.from_pretrained(folder / "unet", torch_dtype=dtype)
        # diffusers' pipelines run a force_upcast VAE in float32 (SD's VAE overflows in fp16).
        upcast = dtype == torch.float16 and vae_config.get("force_upcast", True)
        vae = AutoencoderKL.from_pretrained(folder / "vae", torch_dtype=torch.float32 if upcast else dtype)
        with quiet_loading():
            text_encoder = CLIPTextModel.from_pretrained(folder / "text_encoder", dtype=dtype)
        tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer")
        scheduler = DDPMScheduler.from_config(DDPMScheduler.load_config(folder / "scheduler"))
        return cls(
            frozen(unet, device),
            frozen(vae, device),
            frozen(text_encoder, device),
            tokenizer,
            VPSchedule.from_diffusers(scheduler),
            model_id=model_id,
            weights_hash=weights_hash,
            prediction_type=scheduler.config.prediction_type,
        )

    @property
    def conditional(self) -> bool:
        return True

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        h = self.resolution // self.vae_scale_factor
        return (self.latent_channels, h, h)

    @torch.no_grad()
    def encode_image(self, image: np.ndarray) -> torch.Tensor:
        """uint8 (H, W, 3) -> scaled latents (1, 4, H/f, W/f), float32: the posterior mean, deterministic."""
        x = pixels_to_tensor(image, self.vae.device, self.vae.dtype)  # (1, 3, H, W) in [-1, 1]
        mean = self.vae.encode(x).latent_dist.mean
        return ((mean.float() - self.shift_factor) * self.scaling_factor).to(self.device)

    @torch.no_grad()
    def decode(self, x: torch.Tensor) -> np.ndarray:
        z = x.detach().to(device=self.vae.device, dtype=torch.float32) / self.scaling_factor + self.shift_factor
        return tensor_to_pixels(self.vae.decode(z.to(self.vae.dtype)).sample)

    @torch.no_grad()
    def preview(self, x: torch.Tensor) -> np.ndarray:
        x = x.detach().float()
        if x.shape[1] == LATENT_RGB_FACTORS.shape[0]:
            rgb = torch.einsum("bchw,cr->brhw", x, LATENT_RGB_FACTORS.to(x.device))  # (B, 3, h, w)
        else:  # an unusual latent space: show its first three channels
            rgb = x[:, :3] / (x[:, :3].abs().amax(dim=(1, 2, 3), keepdim=True) + 1e-6)
        rgb = torch.nn.functional.interpolate(rgb, scale_factor=self.vae_scale_factor, mode="nearest")  # (B, 3, H, W)
        return tensor_to_pixels(rgb)

    def prompt_reading(self, prompt: str) -> PromptReading:
        return prompt_reading(self.tokenizer, check_prompts([prompt])[0], self.tokenizer.model_max_length)

    @torch.no_grad()
    def encode_prompt(self, prompts: list[str]) -> torch.Tensor:
        """CLIP last_hidden_state (B, max_length, D), float32, tokens padded to max_length as the pipeline does."""
        prompts = check_prompts(prompts)
        batch = self.tokenizer(
            list(prompts), padding="max_length", max_length=self.tokenizer.model_max_length, truncation=True, return_tensors="pt"
        )
        device = self.text_encoder.device
        mask = batch.attention_mask.to(device) if getattr(self.text_encoder.config, "use_attention_mask", False) else None
        states = self.text_encoder(batch.input_ids.to(device), attention_mask=mask).last_hidden_state
        return states.to(device=self.device, dtype=torch.float32)

    def eps(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        x, t, cond = self._args(x_t, t, cond)
        out = self.unet(x, t, encoder_hidden_states=cond).sample
        return to_eps(out, x_t, t, self.schedule, self.prediction_type)
