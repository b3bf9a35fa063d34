"""The in-domain image encoder: 32x32 RGB -> a unit vector in the MiniLM sentence space (384-d).

Trained contrastively on the project's emoji corpus (`training/train_encoder.py`, CLIP-style
InfoNCE, Radford et al. 2021) against the frozen MiniLM pooled sentence embeddings of the
captions, passed through a learned linear text head. Its features give the studio's per-image realism
score (the mean cosine to the 10 nearest held-out emoji, `editing.backend`), the training
evaluation's KID (Binkowski et al. 2018, `training/evaluate.py`), and text alignment (cosine of the
two embeddings: retrieval in the evaluation, and the benchmarks' Imagic figures).

    enc = load_encoder()                       # assets/models/emoji-encoder
    f = enc.embed_images(images_uint8)         # (B, 384), unit norm
    g = enc.embed_texts(["red apple, google style"])  # (B, 384), unit norm
    score = (f @ g.T)                          # cosine similarity
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "assets" / "models" / "emoji-encoder"


@dataclass(frozen=True)
class EncoderConfig:
    resolution: int = 32
    channels: tuple[int, ...] = (32, 64, 128, 256)  # one stage per entry; stages after the first halve the size
    embed_dim: int = 384  # the MiniLM sentence space
    max_length: int = 16  # MiniLM tokens for embed_texts


class _Block(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.skip = (
            None
            if (c_in == c_out and stride == 1)
            else nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.silu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        return F.silu(h + (x if self.skip is None else self.skip(x)))


class EmojiEncoder(nn.Module):
    """A small ResNet (~2.5 M parameters) plus a linear head on the frozen text embedding."""

    def __init__(self, config: EncoderConfig = EncoderConfig()):
        super().__init__()
        self.config = config
        c = config.channels
        self.stem = nn.Sequential(nn.Conv2d(3, c[0], 3, 1, 1, bias=False), nn.BatchNorm2d(c[0]), nn.SiLU())
        self.stages = nn.Sequential(*[_Block(c[max(i - 1, 0)], c[i], 1 if i == 0 else 2) for i in range(len(c))])
        self.image_head = nn.Linear(c[-1], config.embed_dim)
        self.text_head = nn.Linear(config.embed_dim, config.embed_dim)
        with torch.no_grad():  # start the text head at the identity: MiniLM's own space
            self.text_head.weight.copy_(torch.eye(config.embed_dim))
            self.text_head.bias.zero_()
        self.logit_scale = nn.Parameter(torch.tensor(float(np.log(1 / 0.07))))  # CLIP's initial temperature

    @property
    def device(self) -> torch.device:
        return self.image_head.weight.device

    def forward_images(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, R, R) in [-1, 1] -> (B, 384) unit vectors."""
        h = self.stages(self.stem(x)).mean(dim=(2, 3))
        return F.normalize(self.image_head(h), dim=-1)

    def forward_texts(self, pooled: torch.Tensor) -> torch.Tensor:
        """MiniLM pooled sentence embeddings (B, 384) -> (B, 384) unit vectors."""
        return F.normalize(self.text_head(pooled), dim=-1)

    def preprocess(self, images: np.ndarray) -> torch.Tensor:
        """uint8 (B, H, W, 3) at any size -> (B, 3, R, R) in [-1, 1] (area resampling)."""
        import cv2

        r = self.config.resolution
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[None]
        if images.shape[1:3] != (r, r):
            interp = cv2.INTER_AREA if images.shape[1] > r else cv2.INTER_CUBIC
            images = np.stack([cv2.resize(im, (r, r), interpolation=interp) for im in images])
        x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        return x.to(self.device)

    @torch.no_grad()
    def embed_images(self, images: np.ndarray, batch: int = 256) -> torch.Tensor:
        """uint8 (B, H, W, 3) -> (B, 384) unit vectors (float32, CPU)."""
        was = self.training
        self.eval()
        x = self.preprocess(images)
        out = torch.cat([self.forward_images(x[i : i + batch]) for i in range(0, x.shape[0], batch)])
        self.train(was)
        return out.float().cpu()

    @torch.no_grad()
    def embed_texts(self, texts: list[str]) -> torch.Tensor:
        """Captions -> (B, 384) unit vectors (float32, CPU), through the frozen MiniLM."""
        from editing.models.minilm import shared_minilm

        pooled = shared_minilm(self.config.max_length).pooled(list(texts))
        return self.forward_texts(pooled.to(self.device)).float().cpu()

    def save(self, path: str | Path) -> None:
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        cfg = asdict(self.config) | {"architecture": "EmojiEncoder", "module": "editing.encoder"}
        (path / "config.json").write_text(json.dumps(cfg, indent=1) + "\n")
        save_file({k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}, str(path / "model.safetensors"))


def load_encoder(path: str | Path | None = None, device: str | torch.device | None = None) -> EmojiEncoder:
    """Load the shipped encoder (default `assets/models/emoji-encoder`), in eval mode."""
    from safetensors.torch import load_file

    path = Path(path) if path is not None else DEFAULT_PATH
    if not (path / "model.safetensors").exists():
        raise FileNotFoundError(
            f"No emoji encoder at {path}: train one with `python -m training.train_encoder` or restore assets/."
        )
    raw = json.loads((path / "config.json").read_text())
    cfg = EncoderConfig(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items() if k in EncoderConfig.__dataclass_fields__}
    )
    model = EmojiEncoder(cfg)
    model.load_state_dict(load_file(str(path / "model.safetensors")))
    return model.to(device or "cpu").eval().requires_grad_(False)


def reference_features(path: str | Path | None = None) -> tuple[torch.Tensor, list[str]]:
    """The held-out split's image features (N, 384) and captions, shipped beside the encoder."""
    from safetensors.torch import load_file

    path = Path(path) if path is not None else DEFAULT_PATH
    feats = load_file(str(path / "reference_features.safetensors"))["features"].float()
    captions = json.loads((path / "reference_captions.json").read_text())
    return feats, captions
