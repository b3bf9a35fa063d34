"""Text edits through edit-friendly DDPM inversion on the embedded emoji model: which target guidance
and T_skip edit, and what they cost in faithfulness.

    python docs/edit/edit_study.py --check --threads 2   # docs/edit/edit-study.json, one PNG per T_skip
    python docs/edit/edit_study.py --steps 100 --skips 0,10,36 --scales 3,15 --out docs/edit/edit-study-100steps --no-figures
    python docs/edit/edit_study.py --source-scales 1,2 --skips 0 --scales 3 --out docs/edit/edit-study-source --no-figures

The paper's defaults (T_skip 36 of 100, target guidance 15, source guidance 3.5) were chosen for
Stable Diffusion. This measures them, and a grid around them, on the model the studio ships.

Edits: emoji pairs of the training corpus that differ in one named attribute, in each of the
corpus's five styles (the source is the corpus image, so the edit is in-domain), e.g.
"red heart, google style" -> "blue heart, google style", "grinning face, ..." -> "crying face, ...".
The corpus holds the target emoji in the same style too, drawn by the same artists: that is the
ideal edit, and the study measures how close an edit gets to it.

Per setting (source guidance, T_skip, target guidance), over all edits:

- win: share of edits that the image encoder (assets/models/emoji-encoder) places nearer the target
  caption than the source caption (the unedited inputs' share is the "input" row of the JSON: some
  pairs, such as two yellow faces, are close for the encoder already);
- to_target: mean L2 (SDEdit's norm on [0, 1] pixels, `editing.metrics.l2`) between the edit and
  the real target emoji, against the input's own distance to it ("input" row);
- ssim / l2: faithfulness to the input (`editing.metrics`).

The choice ("choice" in the JSON) is the setting with the lowest to_target (with its T_skip as a
fraction of the steps, what the model folder names: `export_model --edit-skip-fraction`): an edit
that changes what the target changes and keeps the rest comes closest to the real target, one that
does not edit stays at the input's distance, one that breaks the image moves away. Beside it are its
paired differences (with standard errors over the same edits) against the input, against the
paper's setting (T_skip 36 % of the steps, guidance 15) and against each of its neighbours in the
grid (the T_skip values either side at its guidance, the guidance values either side at its
T_skip): a choice at the grid's edge shows there. Figures: per T_skip, one edit per pair (rows:
input, real target, then the edit at each target guidance).

All edits of one setting run as one batch: the engine's own inversion and regeneration functions
(`editing.inversion.invert_latents` / `regenerate`) on a batch of images, each with its own prompt.
`--check` first confirms that one batched edit equals the engine's single `invert` + `edit` run
with the same noise.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import editing  # noqa: E402
from editing import EditConfig, InversionConfig, final  # noqa: E402
from editing.encoder import load_encoder  # noqa: E402
from editing.interface import step_of_fraction  # noqa: E402
from editing.inversion import invert_latents, regenerate  # noqa: E402
from editing.metrics import l2, ssim  # noqa: E402
from editing.samplers import cfg_denoiser, clip_range, working_dtype  # noqa: E402

# (source emoji, target emoji): CLDR names of the corpus; colour, expression and object edits
PAIRS = [
    ("red heart", "blue heart"),
    ("red heart", "green heart"),
    ("red heart", "yellow heart"),
    ("red heart", "purple heart"),
    ("red apple", "green apple"),
    ("red circle", "blue circle"),
    ("tangerine", "lemon"),
    ("grinning face", "crying face"),
    ("grinning face", "winking face"),
    ("grinning face", "smiling face with sunglasses"),
    ("grinning face", "face with tears of joy"),
    ("grinning face", "smiling face with heart-eyes"),
    ("grinning face", "angry face"),
    ("grinning face", "sleeping face"),
    ("cat face", "dog face"),
    ("sun", "cloud with rain"),
]
STYLES = ("google style", "twemoji style", "noto style", "fluent flat style", "fluent 3d style")
STEPS = 50  # the studio's step count for the emoji model (--steps)
# The paper's setting, from the engine's configs: source guidance 3.5, target guidance 15, T_skip 36 of 100.
PAPER_SOURCE, PAPER_GUIDANCE = InversionConfig().source_guidance_scale, EditConfig().guidance_scale


def paper_skip(steps: int) -> int:
    """The paper's T_skip (36 of 100) in `steps` steps."""
    return step_of_fraction(EditConfig().skip / InversionConfig().steps, steps)


def corpus_pairs(corpus: Path) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """Source images, target images, source and target captions, for every pair in every style."""
    z = np.load(corpus, allow_pickle=True)
    index = {str(c): i for i, c in enumerate(z["captions"])}
    src, tgt, sc, tc = [], [], [], []
    for a, b in PAIRS:
        for style in STYLES:
            ca, cb = f"{a}, {style}", f"{b}, {style}"
            if ca in index and cb in index:
                src.append(z["images"][index[ca]])
                tgt.append(z["images"][index[cb]])
                sc.append(ca)
                tc.append(cb)
    return np.stack(src), np.stack(tgt), sc, tc


@torch.no_grad()
def invert_batch(model, images: np.ndarray, prompts: list[str], source_scale: float, seed: int = 0, steps: int = STEPS):
    """`editing.invert` on a batch: (xts (n+1, B, C, h, w), zs (n, B, C, h, w), times)."""
    dtype = working_dtype(model)
    x0 = torch.cat([model.encode_image(im) for im in images]).to(dtype)
    times = model.schedule.times(steps)
    eps_fn = cfg_denoiser(model, model.encode_prompt(prompts), model.encode_prompt([""]), source_scale)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    *_, (_, xts, zs, _) = invert_latents(eps_fn, model.schedule, x0, times, 1.0, gen, clip_range(model))
    return xts, zs, tuple(float(t) for t in times)


@torch.no_grad()
def edit_batch(model, inv, cond: torch.Tensor, skip: int, scale: float) -> np.ndarray:
    """`editing.edit` on a batch, `cond` the target prompts' encoding (one row per image): uint8 (B, H, W, 3)."""
    xts, zs, times = inv
    uncond = model.encode_prompt([""]) if scale != 1.0 else None
    eps_fn = cfg_denoiser(model, cond, uncond, scale)
    *_, (_, x, _) = regenerate(eps_fn, model.schedule, xts[skip], zs, times, 1.0, skip, clip=clip_range(model))
    return model.decode(x)


def check(model, image: np.ndarray, source: str, target: str, steps: int = STEPS) -> float:
    """Max pixel difference between the batched path (batch of 1) and the engine's invert + edit."""
    skip = paper_skip(steps)
    inv = final(editing.invert(model, image, source, InversionConfig(steps=steps, seed=0)))
    batched = invert_batch(model, image[None], [source], PAPER_SOURCE, steps=steps)
    ours = edit_batch(model, batched, model.encode_prompt([target]), skip, PAPER_GUIDANCE)[0]
    theirs = final(editing.edit(model, inv, target, EditConfig(skip=skip)))
    return float(np.abs(ours.astype(int) - theirs.astype(int)).max())


def score(encoder, edits: np.ndarray, src: np.ndarray, tgt: np.ndarray, gs: torch.Tensor, gt: torch.Tensor) -> dict:
    """The figures of one setting; gs / gt: the encoder's embeddings of the source / target captions."""
    f = encoder.embed_images(edits)
    margin = ((f * gt).sum(1) - (f * gs).sum(1)).numpy()
    to_target = [l2(e, t) for e, t in zip(edits, tgt, strict=True)]
    return {
        "win": round(float((margin > 0).mean()), 3),
        "margin": round(float(margin.mean()), 4),
        "to_target": round(float(np.mean(to_target)), 3),
        "ssim": round(float(np.mean([ssim(s, e) for s, e in zip(src, edits, strict=True)])), 3),
        "l2": round(float(np.mean([l2(s, e) for s, e in zip(src, edits, strict=True)])), 3),
        "to_target_each": [round(float(v), 3) for v in to_target],
    }


def paired(a: list[float], b: list[float]) -> dict:
    """Mean of a - b over the same edits, and its standard error."""
    d = np.asarray(a) - np.asarray(b)
    return {"mean": round(float(d.mean()), 3), "se": round(float(d.std(ddof=1) / np.sqrt(len(d))), 3)}


def neighbours(results: list[dict], best: dict) -> list[dict]:
    """The settings next to best in the grid: the T_skip values either side at its guidance, the guidance either side at its T_skip."""
    out = []
    for key, other in (("skip", "guidance"), ("guidance", "skip")):
        row = sorted((r for r in results if r["source_guidance"] == best["source_guidance"] and r[other] == best[other]),
                     key=lambda r: r[key])  # fmt: skip
        i = row.index(best)
        out += [row[j] for j in (i - 1, i + 1) if 0 <= j < len(row)]
    return out


def figure_png(path: str, src, tgt, sc, tc, by_scale: dict[float, np.ndarray]) -> None:
    """Rows: one edit per pair (its first style); columns: input, the real target, the edit at each guidance."""
    rows = []
    for a_name, b_name in PAIRS:
        i = next((k for k, c in enumerate(sc) if c.startswith(a_name + ",") and tc[k].startswith(b_name + ",")), None)
        if i is not None:
            rows.append(np.concatenate([src[i], tgt[i], *[by_scale[s][i] for s in sorted(by_scale)]], 1))
    grid = np.concatenate(rows, 0)
    grid = cv2.resize(grid, (grid.shape[1] * 2, grid.shape[0] * 2), interpolation=cv2.INTER_NEAREST)
    cv2.imwrite(path, cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="emoji")
    ap.add_argument("--corpus", default=str(ROOT / ".cache" / "corpus" / "emoji32.npz"))
    ap.add_argument("--out", default=str(ROOT / "docs" / "edit" / "edit-study"))
    ap.add_argument("--source-scales", default="3.5", help="inversion's source guidance (the paper's and the studio's: 3.5)")
    ap.add_argument("--steps", type=int, default=STEPS, help="inversion steps (the studio's for the emoji model: 50)")
    ap.add_argument("--skips", default="0,2,5,10,18,25", help="T_skip, of --steps (the paper's ratio: 36/100, 18 of 50)")
    ap.add_argument("--scales", default="1,1.5,3,5,7.5,10,15", help="target guidance (the paper's: 15)")
    ap.add_argument("--check", action="store_true", help="first compare one batched edit with the engine's")
    ap.add_argument("--no-figures", action="store_true", help="the JSON only (side studies: --steps, --source-scales)")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model = editing.load_model(a.model)
    encoder = load_encoder()
    src, tgt, sc, tc = corpus_pairs(Path(a.corpus))
    print(f"{len(src)} edits ({len(PAIRS)} pairs x up to {len(STYLES)} styles), {a.steps} steps", flush=True)
    if a.check:
        print(f"batched vs engine invert + edit: max pixel difference {check(model, src[0], sc[0], tc[0], a.steps):.0f}", flush=True)
    floats = lambda s: [float(v) for v in s.split(",")]  # noqa: E731
    results, figures = [], []
    gs, gt = encoder.embed_texts(sc), encoder.embed_texts(tc)  # once: every setting scores the same captions
    target_cond = model.encode_prompt(tc)
    baseline = score(encoder, src, src, tgt, gs, gt)
    print(f"input            win {baseline['win']:.3f}  to_target {baseline['to_target']:.2f}", flush=True)
    for source_scale in floats(a.source_scales):
        t = time.perf_counter()
        inv = invert_batch(model, src, sc, source_scale, steps=a.steps)
        print(f"inverted {len(src)} at source guidance {source_scale} in {time.perf_counter() - t:.0f} s", flush=True)
        for skip in [int(v) for v in floats(a.skips)]:
            by_scale = {}
            for scale in floats(a.scales):
                by_scale[scale] = edits = edit_batch(model, inv, target_cond, skip, scale)
                m = score(encoder, edits, src, tgt, gs, gt)
                results.append({"source_guidance": source_scale, "skip": skip, "guidance": scale, **m})
                print(f"src {source_scale:<4} skip {skip:2d} g {scale:<4}  win {m['win']:.3f}  margin {m['margin']:+.4f}  "
                      f"to_target {m['to_target']:.2f}  ssim {m['ssim']:.3f}  l2 {m['l2']:.2f}", flush=True)  # fmt: skip
            if a.no_figures:
                continue
            png = f"{a.out}-src{source_scale:g}-skip{skip}.png"
            figure_png(png, src, tgt, sc, tc, by_scale)
            figures.append({"file": Path(png).name, "source_guidance": source_scale, "skip": skip,
                            "columns": ["input", "real target"] + [f"guidance {s:g}" for s in sorted(by_scale)]})  # fmt: skip
    # The choice: the setting whose edits come closest to the real target emoji (the ideal edit).
    best = min(results, key=lambda r: r["to_target"])
    paper = next((r for r in results if (r["source_guidance"], r["skip"], r["guidance"]) == (PAPER_SOURCE, paper_skip(a.steps), PAPER_GUIDANCE)),
                 None)
    choice = {
        "source_guidance": best["source_guidance"], "skip": best["skip"], "skip_fraction": round(best["skip"] / a.steps, 4),
        "guidance": best["guidance"],
        "to_target_minus_input": paired(best["to_target_each"], baseline["to_target_each"]),
        **({"to_target_minus_paper": paired(best["to_target_each"], paper["to_target_each"])} if paper else {}),
        "to_target_minus_neighbours": {f"skip {r['skip']}, guidance {r['guidance']:g}": paired(best["to_target_each"], r["to_target_each"])
                                       for r in neighbours(results, best)},
    }  # fmt: skip
    print(f"closest to the real targets: {choice}", flush=True)
    meta = {
        "model": model.model_id,
        "weights_hash": model.weights_hash,
        "steps": a.steps,
        "eta": 1.0,
        "seed": 0,
        "edits": [[s, t] for s, t in zip(sc, tc, strict=True)],
        "input": baseline,
        "choice": choice,
        "figures": figures,
        "results": results,
    }
    Path(a.out + ".json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"wrote {a.out}.json and {len(figures)} figures")


if __name__ == "__main__":
    main()
