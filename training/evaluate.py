"""Held-out figures, grids, SDEdit outputs and CPU speed for the shipped emoji model's card.

    python -m training.evaluate sweep  --n 96  --steps 25 --scales 1,2,3,5   # choose the guidance scale
    python -m training.evaluate kid    --n 500 --steps 25 --scale 3           # KID + retrieval at that scale: eval.json
                                                                              # "heldout" at the recommended scale, else "heldout_scale<s>"
    python -m training.evaluate grid   --steps 50 --scale 3                   # samples.png, 8x8
    python -m training.evaluate sdedit --scale 3                              # sdedit.png + assets/examples guides
    python -m training.evaluate speed                                         # ms per guided step, SDEdit time
    python -m training.evaluate denoise --n 725                               # held-out eps-MSE: own / empty / wrong caption
    python -m training.evaluate samples --samples OUT/samples.npz --corpus .cache/corpus/emoji64.npz  # KID of GPU-made samples

Realism: KID (Binkowski et al. 2018, "Demystifying MMD GANs": unbiased MMD^2 with the cubic
polynomial kernel k(x, y) = (gamma x.y + 1)^3, here gamma = 1 on unit-norm features, averaged over
random subsets), computed by torchmetrics'
KernelInceptionDistance with the project's emoji encoder as the feature extractor, generated
samples (prompts = held-out captions) against the held-out images. Text alignment: text-to-image
retrieval of the generated samples through the encoder (the sample's own caption ranked among all
distinct held-out captions, top-1 / top-5). Layout: the white-area share
(`train_diffusion.white_area`: emoji are drawn on white; 0.49 for the corpus, near 0 for samples
that fill the frame with texture or tiles), beside the held-out images' own. Results are appended to
`<model>/eval.json`.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import torch

from training import open_corpus, show_defaults

MODEL = Path("assets/models/emoji")
CORPUS = Path(".cache/corpus/emoji32.npz")

# 8 rows of the sample grid: 4 training emoji, then 4 held-out emoji (never seen in any style).
GRID_ROWS = [
    ("grinning face, google style", "train"),
    ("red apple, twemoji style", "train"),
    ("red heart, noto style", "train"),
    ("sun, fluent flat style", "train"),
    ("thinking face, twemoji style", "heldout"),
    ("jack-o-lantern, google style", "heldout"),
    ("enraged face, noto style", "heldout"),
    ("spade suit, fluent flat style", "heldout"),
]
GUIDES = {  # painted guide -> prompt
    "smiley": "grinning face, google style",
    "apple": "red apple, google style",
    "heart": "red heart, twemoji style",
}


def read_meta(model_dir: Path | None = None) -> dict:
    """The model folder's stroke_studio.json."""
    return json.loads(((model_dir or MODEL) / "stroke_studio.json").read_text())


def load_unet(model_dir: Path | None = None):
    from diffusers import DDPMScheduler, UNet2DConditionModel

    model_dir = model_dir or MODEL
    unet = UNet2DConditionModel.from_pretrained(model_dir / "unet", torch_dtype=torch.float32).eval().requires_grad_(False)
    sched = DDPMScheduler.from_pretrained(model_dir / "scheduler")
    return unet, dict(sched.config), read_meta(model_dir)


def encode(prompts: list[str], meta: dict) -> torch.Tensor:
    from training.train_diffusion import encode_captions

    return encode_captions(prompts, meta["text_conditioning"], meta["max_length"])


def generate(prompts: list[str], scale: float, steps: int, seed: int = 0, model_dir: Path | None = None) -> np.ndarray:
    from training.train_diffusion import sample

    unet, sched, meta = load_unet(model_dir)
    return sample(unet, sched, encode(prompts, meta), encode([""], meta), guidance_scale=scale, steps=steps, seed=seed)


class EncoderFeatures(torch.nn.Module):
    """torchmetrics feature extractor: uint8 (B, 3, H, W) -> encoder features (B, 384)."""

    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder

    def forward(self, imgs: torch.Tensor) -> torch.Tensor:
        return self.encoder.embed_images(imgs.permute(0, 2, 3, 1).cpu().numpy()).double()


def kid(real: np.ndarray, fake: np.ndarray, encoder, subsets: int = 100) -> tuple[float, float]:
    from torchmetrics.image.kid import KernelInceptionDistance

    size = min(len(real), len(fake), 2000) // 2  # half of the smaller set, so the subsets differ
    # gamma = 1: the features are unit vectors, so k(x, y) = (cos(x, y) + 1)^3 (the default 1/d suits
    # unnormalised Inception features and would make the kernel almost linear here).
    metric = KernelInceptionDistance(feature=EncoderFeatures(encoder), subsets=subsets, subset_size=size, gamma=1.0)
    torch.manual_seed(0)  # torchmetrics draws its subsets from the global generator
    metric.update(torch.from_numpy(real).permute(0, 3, 1, 2), real=True)
    metric.update(torch.from_numpy(fake).permute(0, 3, 1, 2), real=False)
    mean, std = metric.compute()
    return float(mean), float(std)


def retrieval(images: np.ndarray, caption_idx: np.ndarray, captions: list[str], encoder) -> dict[str, float]:
    f = encoder.embed_images(images)
    g = encoder.embed_texts(captions)
    top = (f @ g.T).topk(min(5, len(captions)), dim=1).indices.numpy()
    return {"top1": float((top[:, 0] == caption_idx).mean()), "top5": float((top == caption_idx[:, None]).any(1).mean())}


def heldout(corpus: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    d = open_corpus(corpus or CORPUS)
    m = d["split"] == "heldout"
    return d["images"][m], d["captions"][m]


def heldout_prompts(heldout_captions, n: int, seed: int = 0) -> list[str]:
    """n prompts cycling through the distinct held-out captions, sorted, in a fixed shuffle."""
    uniq = sorted(set(np.asarray(heldout_captions).tolist()))
    order = np.random.default_rng(seed).permutation(len(uniq))
    return [uniq[order[i % len(uniq)]] for i in range(n)]


def score(fake: np.ndarray, prompts: list[str], real: np.ndarray, caps: np.ndarray, encoder) -> dict:
    """KID of generated samples against the held-out images `real`, and text-to-image retrieval of
    each sample's prompt among the distinct held-out captions `caps`."""
    from training.train_diffusion import white_area_shares

    uniq = sorted(set(caps.tolist()))
    position = {c: i for i, c in enumerate(uniq)}
    k_mean, k_std = kid(real, fake, encoder)
    r = retrieval(fake, np.array([position[p] for p in prompts]), uniq, encoder)
    layout = white_area_shares(fake)
    return {"n_samples": len(fake), "kid": k_mean, "kid_std": k_std, "retrieval_top1": r["top1"], "retrieval_top5": r["top5"],
            "n_captions": len(uniq), "white_area": round(float(layout.mean()), 4),
            "white_area_se": round(float(layout.std(ddof=1) / np.sqrt(len(layout))), 4) if len(layout) > 1 else None,
            "white_area_real": round(float(white_area_shares(real).mean()), 4)}  # fmt: skip


def evaluate(n: int, steps: int, scale: float, encoder, seed: int = 0) -> dict:
    """n samples whose prompts cycle through the held-out captions (a fixed shuffle)."""
    real, caps = heldout()
    prompts = heldout_prompts(caps, n, seed)
    t = time.time()
    fake = generate(prompts, scale, steps, seed=seed)
    gen_s = time.time() - t
    return {"guidance_scale": scale, "ddim_steps": steps, **score(fake, prompts, real, caps, encoder), "generation_s": round(gen_s, 1)}


def samples_figures(path: Path, encoder) -> list[dict]:
    """KID and retrieval of samples generated elsewhere (`training.gpu_kit train --samples`): one
    entry per guidance scale in the file, against the held-out images of --corpus."""
    from training.gpu_kit import load_samples

    prompts, by_scale = load_samples(path)
    real, caps = heldout()
    return [{"guidance_scale": s, **score(images, prompts, real, caps, encoder), "source": str(path)} for s, images in by_scale.items()]


def reference_figures(encoder) -> dict:
    """Floors and ceilings: KID of real training images vs held-out images; retrieval of real held-out images."""
    d = open_corpus(CORPUS)
    real, caps = heldout()
    train_idx = np.random.default_rng(0).choice(np.nonzero(d["split"] == "train")[0], size=len(real), replace=False)
    k_mean, k_std = kid(real, d["images"][train_idx], encoder)
    uniq = sorted(set(caps.tolist()))
    r = retrieval(real, np.array([uniq.index(c) for c in caps]), uniq, encoder)
    noise = np.random.default_rng(0).integers(0, 256, real.shape, dtype=np.uint8)
    n_mean, _ = kid(real, noise, encoder)
    return {
        "kid_train_vs_heldout_real": k_mean,
        "kid_train_vs_heldout_real_std": k_std,
        "kid_uniform_noise_vs_heldout": n_mean,
        "retrieval_real_heldout_top1": r["top1"],
        "retrieval_real_heldout_top5": r["top5"],
        "n_heldout_images": len(real),
        "n_captions": len(uniq),
        "chance_top1": 1 / len(uniq),
    }


@torch.no_grad()
def denoise_figures(n: int = 725, per_image: int = 4, seed: int = 0, batch: int = 128) -> dict:
    """Held-out denoising loss (the training objective, DDPM eq. 14) with the image's own caption,
    the empty caption and another held-out emoji's caption, at the same (x0, t, noise) draws.

    Cheap and deterministic (no sampling), so two runs of equal compute compare on the same draws.
    `gap_empty` = loss(empty) - loss(own) is how much the caption helps denoise an emoji the model
    never saw; `gap_wrong` = loss(wrong) - loss(own) how much it relies on *which* caption it gets
    (a model that reads only "some emoji" scores about 0 there).
    """
    unet, sched, meta = load_unet()
    real, caps = heldout()
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(real), size=min(n, len(real)), replace=False)
    # a caption of another held-out emoji (any style), drawn at random for each picked image
    names = np.array([c.rsplit(", ", 1)[0] for c in caps])
    wrong = []
    for i in pick:
        others = np.nonzero(names != names[i])[0]
        wrong.append(caps[rng.choice(others)])
    x0 = torch.from_numpy(real[pick]).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    x0 = x0.repeat_interleave(per_image, 0)
    own = encode([str(c) for c in caps[pick]], meta).repeat_interleave(per_image, 0)
    bad = encode(wrong, meta).repeat_interleave(per_image, 0)
    empty = encode([""], meta)
    g = torch.Generator().manual_seed(seed)
    t = torch.randint(0, sched["num_train_timesteps"], (x0.shape[0],), generator=g)
    noise = torch.randn(x0.shape, generator=g)
    from diffusers import DDPMScheduler

    acp = DDPMScheduler.from_config(sched).alphas_cumprod
    a = acp[t][:, None, None, None]
    xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
    losses = {"own": [], "empty": [], "wrong": []}
    for i in range(0, x0.shape[0], batch):
        sl = slice(i, i + batch)
        for key, ctx in (("own", own[sl]), ("empty", empty.expand(xt[sl].shape[0], *empty.shape[1:])), ("wrong", bad[sl])):
            eps = unet(xt[sl], t[sl], ctx).sample.float()
            losses[key].append(((eps - noise[sl]) ** 2).mean(dim=(1, 2, 3)))
    per = {k: torch.cat(v) for k, v in losses.items()}
    d_empty, d_wrong = per["empty"] - per["own"], per["wrong"] - per["own"]
    se = lambda d: float(d.std() / np.sqrt(len(d)))  # noqa: E731 - standard error of a mean difference
    return {
        "n_images": len(pick),
        "draws_per_image": per_image,
        "loss_own_caption": float(per["own"].mean()),
        "loss_empty_caption": float(per["empty"].mean()),
        "loss_wrong_caption": float(per["wrong"].mean()),
        "gap_empty": float(d_empty.mean()),
        "gap_empty_se": se(d_empty),
        "gap_wrong": float(d_wrong.mean()),
        "gap_wrong_se": se(d_wrong),
        "text_conditioning": meta["text_conditioning"],
    }


def kid_key(scale: float, model_dir: Path | None = None) -> str:
    """eval.json's key for a 1 000-sample figure: "heldout" at the model's recommended scale (the card's
    headline), "heldout_scale<s>" at any other."""
    return "heldout" if scale == read_meta(model_dir).get("recommended_guidance_scale") else f"heldout_scale{scale:g}"


def record(key: str, value, model_dir: Path | None = None) -> None:
    path = (model_dir or MODEL) / "eval.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data[key] = value
    path.write_text(json.dumps(data, indent=1) + "\n")
    print(json.dumps({key: value}, indent=1))


# --- figures -------------------------------------------------------------------------------------


def sample_grid(scale: float, steps: int, out: Path) -> float:
    """The 8x8 grid as a PNG; returns its white-area share (train_diffusion.white_area)."""
    from training.train_diffusion import grid, save_png, white_area

    prompts = [c for c, _ in GRID_ROWS for _ in range(8)]
    # one seed per column: every row starts from the same 8 noises
    ims = np.concatenate([generate([c for c, _ in GRID_ROWS], scale, steps, seed=s)[:, None] for s in range(8)], axis=1)
    assert len(prompts) == ims.shape[0] * ims.shape[1]
    ims = ims.reshape(-1, *ims.shape[2:])
    save_png(out, grid(ims, cols=8, scale=4))
    return white_area(ims)


def paint_guides(size: int = 256) -> dict[str, np.ndarray]:
    """The issue's simple painted guides, drawn with OpenCV (anti-aliased) on white."""
    import cv2

    s = size / 32
    yellow, dark, red, green = (250, 204, 40), (60, 40, 30), (220, 40, 45), (70, 160, 50)
    smiley = np.full((size, size, 3), 255, np.uint8)
    cv2.circle(smiley, (size // 2, size // 2), int(13 * s), yellow, -1, cv2.LINE_AA)
    for x in (11.5, 20.5):
        cv2.circle(smiley, (int(x * s), int(12.5 * s)), int(1.8 * s), dark, -1, cv2.LINE_AA)
    cv2.ellipse(smiley, (size // 2, int(17 * s)), (int(7 * s), int(5.5 * s)), 0, 20, 160, dark, max(1, int(1.6 * s)), cv2.LINE_AA)
    apple = np.full((size, size, 3), 255, np.uint8)
    cv2.circle(apple, (size // 2, int(18 * s)), int(11 * s), red, -1, cv2.LINE_AA)
    cv2.ellipse(apple, (int(19.5 * s), int(6 * s)), (int(4.5 * s), int(2 * s)), -30, 0, 360, green, -1, cv2.LINE_AA)
    heart = np.full((size, size, 3), 255, np.uint8)
    cv2.circle(heart, (int(11 * s), int(12 * s)), int(6.5 * s), red, -1, cv2.LINE_AA)
    cv2.circle(heart, (int(21 * s), int(12 * s)), int(6.5 * s), red, -1, cv2.LINE_AA)
    pts = np.array([[4.7, 13.5], [27.3, 13.5], [16, 27.5]]) * s
    cv2.fillPoly(heart, [pts.astype(np.int32)], red, cv2.LINE_AA)
    return {"smiley": smiley, "apple": apple, "heart": heart}


def sdedit_figure(
    scale: float, out: Path, examples_dir: Path = Path("assets/examples"), seeds: int = 4, t0s: tuple[float, ...] = (0.5, 0.7)
) -> dict:
    """Rows: guide (at the model's resolution), then SDEdit outputs for each t0 and seed, through the engine's editing.sdedit."""
    import editing
    from editing.images import to_model_size
    from editing.sdedit import sdedit  # `editing.sdedit` turns into the submodule once it is imported
    from training.train_diffusion import grid, save_png

    guides = paint_guides()
    examples_dir.mkdir(parents=True, exist_ok=True)
    for name, im in guides.items():
        save_png(examples_dir / f"{name}.png", im)
    model = editing.load_model(str(MODEL.resolve()), device="cpu")
    res = model.resolution  # the guide at the size the model works at
    rows, timing = [], {}
    for name, prompt in GUIDES.items():
        small = to_model_size(guides[name], res)
        row = [small]
        for t0 in t0s:
            for seed in range(seeds):
                cfg = editing.SDEditConfig(t0=t0, steps=50, seed=seed, guidance_scale=scale)
                t = time.time()
                row.append(editing.final(sdedit(model, small, cfg, prompt=prompt)))
                timing.setdefault(t0, []).append(time.time() - t)
        rows.append(np.stack(row))
    save_png(out, grid(np.concatenate(rows), cols=1 + len(t0s) * seeds, scale=4))
    return {
        "layout": f"rows {list(GUIDES)}; column 1 the {res}-px guide, then t0 in {list(t0s)} x seeds 0..{seeds - 1}",
        "prompts": GUIDES,
        "seconds_per_edit": {str(k): round(float(np.median(v)), 2) for k, v in timing.items()},
    }


def speed(repeats: int = 20) -> dict:
    """ms per guided denoising step at batch 2 (one UNet call on 4 rows: 2 conditional, 2 unconditional)
    at the model's own resolution, NCHW and channels_last (the layout `editing.fastpath.accelerate`
    gives the studio and the command line), at 1 and 2 threads; and an SDEdit edit at t0 0.5 (50-step
    schedule -> 25 steps) through the engine, accelerated as the studio runs it."""
    import os

    import editing
    from editing.fastpath import accelerate
    from editing.sdedit import sdedit

    unet, _, meta = load_unet()
    res = int(unet.config.sample_size)
    ctx = encode(["red apple, google style", "grinning face, google style", "", ""], meta)
    x = torch.randn(4, 3, res, res)
    t = torch.full((4,), 500.0)
    out = {"parameters": sum(p.numel() for p in unet.parameters()), "resolution": res,
           "load_average_before": round(os.getloadavg()[0], 2)}  # fmt: skip
    layouts = {"": (unet, x), "_channels_last": (copy.deepcopy(unet).to(memory_format=torch.channels_last),
                                                  x.contiguous(memory_format=torch.channels_last))}  # fmt: skip
    with torch.no_grad():
        for threads in (1, 2):
            torch.set_num_threads(threads)
            for suffix, (net, xin) in layouts.items():
                for _ in range(3):
                    net(xin, t, ctx)
                times = []
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    net(xin, t, ctx)
                    times.append(time.perf_counter() - t0)
                out[f"guided_step_batch2_ms_threads{threads}{suffix}"] = {
                    "median": round(1000 * float(np.median(times)), 1),
                    "min": round(1000 * float(np.min(times)), 1),
                }
    model = accelerate(editing.load_model(str(MODEL.resolve()), device="cpu"))
    guide = paint_guides()["apple"]
    for threads in (1, 2):
        torch.set_num_threads(threads)
        edits = []
        for seed in range(3):
            t0 = time.perf_counter()
            cfg = editing.SDEditConfig(t0=0.5, steps=50, seed=seed, guidance_scale=3.0)
            editing.final(sdedit(model, guide, cfg, prompt="red apple, google style"))
            edits.append(time.perf_counter() - t0)
        out[f"sdedit_t0_0.5_s_threads{threads}"] = {
            "median": round(float(np.median(edits)), 2),
            "min": round(float(np.min(edits)), 2),
        }
    out["load_average_after"] = round(os.getloadavg()[0], 2)
    return out


def main(argv: list[str] | None = None) -> None:
    global MODEL, CORPUS
    ap = argparse.ArgumentParser(description="Evaluate the shipped emoji model.")
    ap.add_argument("what", choices=["sweep", "kid", "reference", "grid", "sdedit", "speed", "denoise", "samples"])
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--scale", type=float, default=3.0)
    ap.add_argument("--scales", default="1,2,3,5")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", type=Path, default=MODEL, help="the exported model folder")
    ap.add_argument("--corpus", type=Path, default=CORPUS, help="the corpus whose held-out split is the reference")
    ap.add_argument("--samples", type=Path, default=None, help="samples.npz from `training.gpu_kit train --samples` (what=samples)")
    ap.add_argument("--encoder", type=Path, default=None,
                    help="the encoder folder whose features score KID and retrieval (default: the shipped assets/models/emoji-encoder)")
    a = show_defaults(ap).parse_args(argv)
    MODEL, CORPUS = a.model, a.corpus
    torch.set_num_threads(a.threads)
    if a.what in ("sweep", "kid", "reference", "samples"):
        from editing.encoder import load_encoder

        try:
            encoder = load_encoder(a.encoder)  # a retrained encoder was usable only by overwriting the shipped one
        except FileNotFoundError as e:
            raise SystemExit(str(e)) from None
    if a.what == "sweep":
        record("guidance_sweep", [evaluate(a.n, a.steps, float(s), encoder) for s in a.scales.split(",")])
    elif a.what == "kid":
        record(kid_key(a.scale), evaluate(a.n, a.steps, a.scale, encoder, seed=1))
    elif a.what == "reference":
        record("reference", reference_figures(encoder))
    elif a.what == "grid":
        layout = sample_grid(a.scale, a.steps, MODEL / "samples.png")
        record("grid", {"rows": GRID_ROWS, "columns": "seeds 0..7", "guidance_scale": a.scale, "ddim_steps": a.steps,
                        "white_area": round(layout, 4)})  # fmt: skip
    elif a.what == "sdedit":
        record("sdedit", sdedit_figure(a.scale, MODEL / "sdedit.png"))
    elif a.what == "speed":
        record("speed_cpu", speed())
    elif a.what == "samples":
        if a.samples is None:
            raise SystemExit("samples needs --samples PATH (a samples.npz from training.gpu_kit)")
        record("heldout_gpu_samples", samples_figures(a.samples, encoder))
    elif a.what == "denoise":
        record("heldout_denoising", denoise_figures(min(a.n, 725)))


if __name__ == "__main__":
    main()
