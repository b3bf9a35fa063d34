"""Train the in-domain image encoder (`editing.encoder.EmojiEncoder`) on the emoji corpus.

    python -m training.train_encoder --corpus .cache/corpus/emoji32.npz --out assets/models/emoji-encoder --max-minutes 15

CLIP-style symmetric InfoNCE (Radford et al. 2021) with a learnable temperature between the image
embeddings and the frozen MiniLM pooled sentence embeddings of the captions (through a learned
linear text head). Augmentation: flips where the corpus allows them, 2-px random translation.
Writes the model, the held-out split's reference features and captions, and prints held-out
text-to-image / image-to-text retrieval accuracy.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from editing.encoder import EmojiEncoder, EncoderConfig
from training import open_corpus, show_defaults


@dataclass
class EncoderTrainConfig:
    corpus: str = ".cache/corpus/emoji32.npz"
    out: str = ".cache/runs/emoji-encoder"  # the shipped folder only when named: a trial run overwrote it
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_steps: int = 100
    max_steps: int | None = None
    max_minutes: float | None = 15.0
    threads: int = 1
    seed: int = 0
    log_every: int = 20


def _augment(x: torch.Tensor, flip_ok: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    b = x.shape[0]
    flip = flip_ok & (torch.rand(b, generator=gen) < 0.5)
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    padded = F.pad(x, (2, 2, 2, 2), value=1.0)  # white border, like the corpus background
    dx, dy = torch.randint(0, 5, (2,), generator=gen).tolist()
    return padded[..., dy : dy + x.shape[-2], dx : dx + x.shape[-1]]


def clip_loss(img: torch.Tensor, txt: torch.Tensor, logit_scale: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE. `labels` groups rows with the same caption so duplicates are not negatives."""
    logits = logit_scale.exp().clamp(max=100) * img @ txt.T  # (B, B)
    same = labels[:, None] == labels[None, :]
    logits = logits.masked_fill(same & ~torch.eye(len(labels), dtype=torch.bool), float("-inf"))
    target = torch.arange(len(labels))
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def retrieval(model: EmojiEncoder, images: np.ndarray, pooled: torch.Tensor, caption_idx: np.ndarray) -> dict[str, float]:
    """Held-out retrieval: each image against all distinct held-out captions (top-1 / top-5; with
    fewer than 5 captions, top-5 is every caption)."""
    with torch.no_grad():
        f = model.embed_images(images)
        g = model.forward_texts(pooled).float()
    sims = f @ g.T  # (N images, M captions)
    top = sims.topk(min(5, sims.shape[1]), dim=1).indices.numpy()
    return {
        "image_to_text_top1": float((top[:, 0] == caption_idx).mean()),
        "image_to_text_top5": float((top == caption_idx[:, None]).any(1).mean()),
        "n_images": int(len(images)),
        "n_captions": int(pooled.shape[0]),
    }


def train(
    cfg: EncoderTrainConfig,
    data: dict[str, np.ndarray] | None = None,
    pooled: torch.Tensor | None = None,
    row_to_caption: torch.Tensor | None = None,
    model_config: EncoderConfig | None = None,
) -> dict:
    """Train and return {"model", "losses", "steps", "minutes"}. Tests pass tiny `data` and `pooled`."""
    from training.train_diffusion import torch_threads

    with torch_threads(cfg.threads):
        return _train(cfg, data, pooled, row_to_caption, model_config)


def _train(cfg: EncoderTrainConfig, data, pooled, row_to_caption, model_config) -> dict:
    torch.manual_seed(cfg.seed)
    if data is None:
        from training.train_diffusion import load_corpus

        data = load_corpus(cfg.corpus)
    if pooled is None:  # the same cached MiniLM encodings the diffusion training uses
        from training.train_diffusion import TrainConfig, cached_encodings

        enc, row_to_caption = cached_encodings(list(data["captions"]), TrainConfig(corpus=cfg.corpus, conditioning="pooled"))
        pooled = enc[:, 0, :]  # (U, 384)
    images = torch.from_numpy(data["images"]).permute(0, 3, 1, 2).contiguous()  # (N, 3, R, R) uint8
    flip_ok = torch.from_numpy(np.asarray(data["flip"], bool))
    model = EmojiEncoder(model_config or EncoderConfig(resolution=images.shape[-1])).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    n = images.shape[0]
    losses: list[float] = []
    t0 = time.time()
    step = 0
    while True:
        minutes = (time.time() - t0) / 60
        if (cfg.max_steps is not None and step >= cfg.max_steps) or (cfg.max_minutes is not None and minutes >= cfg.max_minutes):
            break
        frac = step / cfg.max_steps if cfg.max_steps else minutes / cfg.max_minutes
        warm = min(1.0, (step + 1) / cfg.warmup_steps)
        for g_ in opt.param_groups:
            g_["lr"] = cfg.lr * warm * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))
        idx = torch.randint(0, n, (min(cfg.batch_size, n),), generator=gen)
        x = _augment(images[idx].float() / 127.5 - 1.0, flip_ok[idx], gen)
        labels = row_to_caption[idx]
        loss = clip_loss(model.forward_images(x), model.forward_texts(pooled[labels]), model.logit_scale, labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        step += 1
        if step % cfg.log_every == 0:
            print(
                f"step {step} loss {np.mean(losses[-cfg.log_every :]):.4f} T={1 / model.logit_scale.exp().item():.4f} {minutes:.1f} min",
                flush=True,
            )
    return {"model": model.eval(), "losses": losses, "steps": step, "minutes": (time.time() - t0) / 60}


def save_examples(corpus: str, out: Path, n: int = 8) -> list[str]:
    """A few held-out images (first n distinct emoji by caption) for the encoder's test: google
    style, or every style where the corpus has no held-out google image (`--sources noto`)."""
    from PIL import Image

    d = open_corpus(corpus)
    held = d["split"] == "heldout"
    google = held & (d["source"] == "google")
    m = np.nonzero(google if google.any() else held)[0]
    m = m[np.argsort(d["captions"][m], kind="stable")]
    picks, seen = [], set()
    for i in m:
        base = d["emoji"][i].rstrip("\ufe0f")
        is_flag = any(0x1F1E6 <= ord(c) <= 0x1F1FF or 0xE0020 <= ord(c) <= 0xE007F for c in base)
        if base not in seen and "skin tone" not in d["captions"][i] and not is_flag:
            seen.add(base)
            picks.append(i)
        if len(picks) == n:
            break
    if not picks:
        picks = list(m[:n])  # only flags or skin tones held out: show them rather than nothing
    Image.fromarray(np.concatenate(list(d["images"][picks]), axis=1)).save(out / "heldout_examples.png")
    captions = d["captions"][picks].tolist()
    (out / "heldout_examples.json").write_text(json.dumps(captions, ensure_ascii=False, indent=0) + "\n")
    return captions


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Train the emoji image encoder.")
    d = EncoderTrainConfig()
    ap.add_argument("--corpus", default=d.corpus)
    ap.add_argument("--out", default=d.out)
    ap.add_argument("--batch-size", type=int, default=d.batch_size)
    ap.add_argument("--lr", type=float, default=d.lr)
    ap.add_argument("--max-steps", type=int, default=None)
    ap.add_argument("--max-minutes", type=float, default=d.max_minutes)
    ap.add_argument("--threads", type=int, default=d.threads)
    a = show_defaults(ap).parse_args(argv)
    cfg = EncoderTrainConfig(
        corpus=a.corpus,
        out=a.out,
        batch_size=a.batch_size,
        lr=a.lr,
        max_steps=a.max_steps,
        max_minutes=a.max_minutes,
        threads=a.threads,
    )
    with open_corpus(cfg.corpus) as d:
        if not (d["split"] == "heldout").any():
            ap.error(f"{cfg.corpus} has no held-out images: the encoder's reference features and figures need them "
                     "(build the corpus with training.corpus, which holds out about 3 % of the emoji)")  # fmt: skip
    r = train(cfg)
    model = r["model"]
    out = Path(cfg.out)
    model.save(out)

    from safetensors.torch import save_file

    from editing.models.minilm import shared_minilm

    d = open_corpus(cfg.corpus)
    held = d["split"] == "heldout"
    images, captions = d["images"][held], d["captions"][held]
    feats = model.embed_images(images)
    save_file({"features": feats.half().contiguous()}, str(out / "reference_features.safetensors"))
    save_examples(cfg.corpus, out)
    (out / "reference_captions.json").write_text(json.dumps(captions.tolist(), ensure_ascii=False, indent=0) + "\n")
    uniq, inv = np.unique(captions, return_inverse=True)
    pooled = shared_minilm(16).pooled(uniq.tolist())
    metrics = retrieval(model, images, pooled, inv)
    train_m = d["split"] == "train"
    rng = np.random.default_rng(0)
    sub = rng.choice(np.nonzero(train_m)[0], size=min(1000, int(train_m.sum())), replace=False)
    u2, i2 = np.unique(d["captions"][sub], return_inverse=True)
    metrics_train = retrieval(model, d["images"][sub], shared_minilm(16).pooled(u2.tolist()), i2)
    summary = {
        "steps": r["steps"],
        "minutes": round(r["minutes"], 1),
        "batch_size": cfg.batch_size,
        "images_seen": r["steps"] * cfg.batch_size,
        "final_loss": float(np.mean(r["losses"][-20:])),
        "temperature": 1 / model.logit_scale.exp().item(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "heldout_retrieval": metrics,
        "train_subset_retrieval": metrics_train,
    }
    (out / "training_summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
