"""Tiny random models of every family, saved as real diffusers folders (diffusers' own test sizes).

Every builder is seeded and deterministic, writes with `save_pretrained` (so `load_model`'s real
loading code is what the tests exercise) and returns the folder. `save_all(root)` builds them all
in about a second or two of CPU.

| family     | network                                                        | model space     |
| ---------- | -------------------------------------------------------------- | --------------- |
| pixel-text | UNet2DConditionModel 16 px, blocks (32, 64), MiniLM "pooled"   | (3, 16, 16)     |
| pixel-ddpm | UNet2DModel 16 px, blocks (32, 64)                             | (3, 16, 16)     |
| ve         | UNet2DModel, fourier time embedding, skip blocks (NCSN++-like) | (3, 16, 16)     |
| latent-sd  | AutoencoderKL (2 blocks) + CLIP (hidden 32) + UNet in_ch 4     | (4, 8, 8) = 16 px |
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

FIXTURES = Path(__file__).parent / "fixtures"
TINY_CLIP = FIXTURES / "tiny_clip"  # vocab.json + merges.txt: byte-level BPE, 570 tokens


def _seed(seed: int) -> None:
    torch.manual_seed(seed)


def _tiny_cond_unet(*, sample_size: int, channels: int, cross_attention_dim: int):
    """The tiny text-conditioned UNet of pixel-text and latent-sd (one cross-attention block)."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=sample_size,
        in_channels=channels,
        out_channels=channels,
        layers_per_block=1,
        block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=cross_attention_dim,
        attention_head_dim=8,
        norm_num_groups=8,
    )


def save_tiny_pixel_text(
    folder: str | Path,
    *,
    text_conditioning: str = "pooled",
    use_attention_mask: bool = False,
    prediction_type: str = "epsilon",
    seed: int = 0,
) -> Path:
    from diffusers import DDPMScheduler

    from editing.models.pixel_text import save_pixel_text

    _seed(seed)
    unet = _tiny_cond_unet(sample_size=16, channels=3, cross_attention_dim=384)
    scheduler = DDPMScheduler(num_train_timesteps=1000, prediction_type=prediction_type)
    return save_pixel_text(
        folder,
        unet,
        scheduler,
        text_conditioning=text_conditioning,
        max_length=16,
        resolution=16,
        prediction_type=prediction_type,
        recommended_guidance_scale=3.0,
        use_attention_mask=use_attention_mask,
    )


def save_tiny_pixel_ddpm(folder: str | Path, *, prediction_type: str = "epsilon", seed: int = 0) -> Path:
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    _seed(seed)
    unet = UNet2DModel(
        sample_size=16,
        in_channels=3,
        out_channels=3,
        layers_per_block=1,
        block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=8,
        norm_num_groups=8,
    )
    scheduler = DDPMScheduler(num_train_timesteps=1000, prediction_type=prediction_type)
    DDPMPipeline(unet=unet, scheduler=scheduler).save_pretrained(folder)
    return Path(folder)


def save_tiny_ve(folder: str | Path, *, sigma_max: float = 50.0, seed: int = 0) -> Path:
    """NCSN++-like: fourier (Gaussian random feature) time embedding of sigma, skip blocks, sqrt(2) mid scale."""
    from diffusers import ScoreSdeVePipeline, ScoreSdeVeScheduler, UNet2DModel

    _seed(seed)
    unet = UNet2DModel(
        sample_size=16,
        in_channels=3,
        out_channels=3,
        layers_per_block=1,
        block_out_channels=(32, 64),
        time_embedding_type="fourier",
        flip_sin_to_cos=True,
        norm_eps=1e-6,
        mid_block_scale_factor=math.sqrt(2.0),
        down_block_types=("SkipDownBlock2D", "AttnSkipDownBlock2D"),
        up_block_types=("AttnSkipUpBlock2D", "SkipUpBlock2D"),
        attention_head_dim=8,
        norm_num_groups=8,
    )
    scheduler = ScoreSdeVeScheduler(num_train_timesteps=2000, sigma_min=0.01, sigma_max=sigma_max, snr=0.17)
    ScoreSdeVePipeline(unet=unet, scheduler=scheduler).save_pretrained(folder)
    return Path(folder)


def save_tiny_latent_sd(
    folder: str | Path, *, prediction_type: str = "epsilon", scaling_factor: float = 0.18215, seed: int = 0
) -> Path:
    """A StableDiffusionPipeline folder: VAE downscale 2, latents (4, 8, 8), images 16 px, CLIP hidden 32."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    _seed(seed)
    unet = _tiny_cond_unet(sample_size=8, channels=4, cross_attention_dim=32)
    _seed(seed + 1)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(8, 16),
        layers_per_block=1,
        norm_num_groups=4,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        sample_size=16,
        scaling_factor=scaling_factor,
    )
    tokenizer = CLIPTokenizer(vocab=str(TINY_CLIP / "vocab.json"), merges=str(TINY_CLIP / "merges.txt"), model_max_length=77)
    _seed(seed + 2)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=77,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            projection_dim=32,
        )
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        prediction_type=prediction_type,
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder)
    return Path(folder)


def save_all(root: str | Path) -> dict[str, Path]:
    """Every family under root/<family>; returns family -> folder."""
    root = Path(root)
    return {
        "pixel-text": save_tiny_pixel_text(root / "pixel-text"),
        "pixel-ddpm": save_tiny_pixel_ddpm(root / "pixel-ddpm"),
        "ve": save_tiny_ve(root / "ve"),
        "latent-sd": save_tiny_latent_sd(root / "latent-sd"),
    }
