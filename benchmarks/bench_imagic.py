"""Imagic on the CPU: the fast preset end to end on the emoji model, then eta re-renders from the cache.

    python benchmarks/bench_imagic.py                       # the README figures (2 threads)
    python benchmarks/bench_imagic.py --sweep               # the grid that chose the emoji fast preset
    python benchmarks/bench_imagic.py --batch-study         # fewer Adam steps at larger batches, equal samples

For each edit (an input emoji from the corpus, or the model's own sample of the source caption when
the corpus is absent, and a target text): one `imagic` run with the fast preset (stages 1-3, timed
per stage), then re-renders at several eta from the cached state (no optimisation), each timed.
Text alignment (cosine of the emoji encoder's image and text embeddings, editing/encoder.py) is
reported for the source and the target caption at each eta when the encoder is present, and the
rms distance to the input on [0, 1] pixels. A grid (input, then one column per eta) is written to
--out-dir. Results JSON in benchmarks/results/, a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import REPO, environment, markdown_table, write_results  # noqa: E402
from editing import final  # noqa: E402
from editing.cache import LRUCache  # noqa: E402
from editing.imagic import ImagicConfig, imagic, render_imagic  # noqa: E402

CORPUS = REPO / ".cache" / "corpus" / "emoji32.npz"
EDITS = {  # name -> (input caption, target text)
    "apple": ("green apple, google style", "red apple, google style"),
    "cat": ("cat face, google style", "dog face, google style"),
    "heart": ("yellow heart, twemoji style", "red heart, twemoji style"),
}
ETAS = (0.0, 0.4, 0.7, 1.0)


def input_image(model, caption: str, seed: int = 0) -> tuple[np.ndarray, str]:
    """The corpus image with this caption, else the model's own DDIM sample of it."""
    if CORPUS.is_file():
        data = np.load(CORPUS)
        hits = np.flatnonzero(data["captions"] == caption)
        if hits.size:
            return data["images"][hits[0]], "corpus"
    from editing.samplers import clip_range, last, prompt_denoiser, randn, sample_vp

    gen = torch.Generator().manual_seed(seed)
    x_T = randn((1, *model.latent_shape), gen, model.device)
    eps_fn = prompt_denoiser(model, caption, model.recommended_guidance_scale or 3.0)
    x = last(sample_vp(eps_fn, x_T, model.schedule, model.schedule.times(50), 0.0, gen, clip=clip_range(model)))
    return model.decode(x)[0], "model sample"


def alignment(images: list[np.ndarray], texts: list[str]) -> np.ndarray | None:
    """(len(images), len(texts)) cosines in the emoji encoder's space, or None without the encoder."""
    try:
        from editing.encoder import load_encoder

        enc = load_encoder()
    except Exception:  # no trained encoder in this checkout
        return None
    with torch.no_grad():
        return (enc.embed_images(np.stack(images)) @ enc.embed_texts(texts).T).cpu().numpy()


def rms(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a.astype(np.float64) / 255 - b.astype(np.float64) / 255) ** 2)))


def run_edit(model, name: str, config: ImagicConfig, out_dir: Path, heldout: bool = False) -> dict:
    """One edit end to end, then eta re-renders; `heldout` adds `heldout_loss` of its state."""
    source, target = EDITS[name]
    image, origin = input_image(model, source)
    cache = LRUCache(2)
    stamps: dict[str, float] = {}
    t0 = time.perf_counter()
    for frame in imagic(model, image, target, config, cache=cache):
        stamps.setdefault(frame.stage, time.perf_counter())
        if frame.done:
            first, info = frame.result, frame.info
    t_end = time.perf_counter()
    state = cache.get(info["state_key"])
    renders, times = {}, {}
    for eta in ETAS:
        t = time.perf_counter()
        renders[eta] = final(render_imagic(model, state, ImagicConfig(**{**config.__dict__, "eta": eta})))
        times[eta] = time.perf_counter() - t
    assert np.array_equal(renders[config.eta], first) if config.eta in renders else True
    scores = alignment([image, *renders.values()], [source, target])
    grid = np.concatenate([image, *renders.values()], axis=1).repeat(4, 0).repeat(4, 1)
    from PIL import Image

    out_dir.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(out_dir / f"imagic-{name}.png")
    stage_start = [stamps.get(s, t_end) for s in ("optimize", "finetune", "denoise", "done")]
    return {
        "edit": name, "source": source, "target": target, "input": origin,
        "stage1_s": stage_start[1] - t0, "stage2_s": stage_start[2] - stage_start[1], "stage3_s": t_end - stage_start[2],
        "total_s": t_end - t0, "rerender_s": {str(e): v for e, v in times.items()},
        "loss_first": state.losses[0] if state.losses else None, "loss_last": state.losses[-1] if state.losses else None,
        "rms_to_input": {str(e): rms(r, image) for e, r in renders.items()},
        "align_target": None if scores is None else {str(e): float(scores[i + 1, 1]) for i, e in enumerate(ETAS)},
        "align_source": None if scores is None else {str(e): float(scores[i + 1, 0]) for i, e in enumerate(ETAS)},
        "input_align": None if scores is None else [float(scores[0, 0]), float(scores[0, 1])],
        "grid": str(out_dir / f"imagic-{name}.png"),
        **({"heldout": heldout_loss(model, image, state)} if heldout else {}),
    }


def heldout_loss(model, image: np.ndarray, state, pairs: int = 64, seed: int = 1234) -> dict[str, float]:
    """Eq. 2's loss at `pairs` fixed (t, eps) draws that no optimisation saw: the loaded model under
    the target text and under e_opt (stage 1's fit), and the tuned copy under e_opt (stage 2's)."""
    from editing import images as im
    from editing.imagic import tuned_unet

    x0 = model.encode_image(im.to_model_size(image, model.resolution)).float()
    abar = model.schedule.alphas_cumprod.to(torch.float32)
    gen = torch.Generator().manual_seed(seed)
    t = torch.randint(0, abar.shape[0], (pairs,), generator=gen)
    eps = torch.randn((pairs, *x0.shape[1:]), generator=gen)
    a = abar[t].view(-1, 1, 1, 1)
    x_t = (a.sqrt() * x0.cpu() + (1 - a).sqrt() * eps).to(x0.device)

    def loss(bundle, cond: torch.Tensor) -> float:
        with torch.no_grad():
            pred = bundle.eps(x_t, t.float().to(x0.device), cond.to(x0.device).expand(pairs, -1, -1))
        return float(torch.nn.functional.mse_loss(pred.float().cpu(), eps))

    return {"target_base": loss(model, state.e_tgt), "opt_base": loss(model, state.e_opt),
            "opt_tuned": loss(model.replace(unet=tuned_unet(model, state)), state.e_opt)}


# --batch-study: the same (t, eps) samples per stage as the preset, in fewer and larger Adam steps.
# On a GPU an Adam step at batch 1 is bound by kernel launches, not by compute (issue 6: 86 ms a
# stage-1 step of Stable Diffusion's UNet on an H100, a few percent of its peak), so a step at
# batch b costs far less than b steps: if the results hold, the steps are the lever for the H100's
# 30 s. "lr x sqrt(b/b0)" rows scale Adam's step with the square root of the batch.
BATCH_STUDY = (1, 2, 4, 8, 16)


def batch_study(model, args) -> list[dict]:
    import math

    base = ImagicConfig.from_preset("fast", model.family, **overrides(args.set))
    samples_1, samples_2 = base.embedding_steps * base.batch_size, base.finetune_steps * base.batch_size
    grid = [dict(batch_size=b) for b in BATCH_STUDY]
    grid += [dict(batch_size=b, lr_scale=math.sqrt(b / base.batch_size)) for b in BATCH_STUDY if b > base.batch_size]
    rows = []
    for change in grid:
        b, scale = change["batch_size"], change.get("lr_scale", 1.0)
        cfg = ImagicConfig(**{**base.__dict__, "batch_size": b, "embedding_steps": math.ceil(samples_1 / b),
                              "finetune_steps": math.ceil(samples_2 / b), "embedding_lr": base.embedding_lr * scale,
                              "finetune_lr": base.finetune_lr * scale})
        label = f"batch {b} x {cfg.embedding_steps} + {cfg.finetune_steps} steps" + (f", lr x {scale:.2f}" if scale != 1 else "")
        for name in args.edits.split(","):
            r = run_edit(model, name, cfg, Path(args.out_dir) / "batch" / label.replace(" ", "").replace(",", "-"), heldout=True)
            r.update(change=label, batch_size=b, lr_scale=scale, embedding_steps=cfg.embedding_steps, finetune_steps=cfg.finetune_steps)
            rows.append(r)
            print(label, name, f"{r['total_s']:.0f}s", "held-out", {k: round(v, 4) for k, v in r["heldout"].items()},
                  "rms", r["rms_to_input"], "align", r["align_target"], flush=True)
    return rows


def sweep(model, args) -> list[dict]:
    """The candidates tried for the emoji model's fast preset, on one edit each."""
    base = ImagicConfig.from_preset("fast", model.family)
    grid = [
        dict(),
        dict(embedding_steps=50, finetune_steps=50),
        dict(embedding_steps=300, finetune_steps=300),
        dict(finetune_lr=3e-4),
        dict(finetune_lr=3e-3),
        dict(lora_rank=4),
        dict(finetune_mode="full", finetune_lr=1e-4),
        dict(embedding_lr=2e-3),
        dict(batch_size=1),
    ]
    rows = []
    for change in grid:
        cfg = ImagicConfig(**{**base.__dict__, **change})
        for name in args.edits.split(","):
            r = run_edit(model, name, cfg, Path(args.out_dir) / "sweep" / "-".join(f"{k}{v}" for k, v in change.items()))
            r["change"] = change or "fast preset"
            rows.append(r)
            print(r["change"], name, f"{r['total_s']:.0f}s", "rms", r["rms_to_input"], "align", r["align_target"], flush=True)
    return rows


def batch_table(rows: list[dict]) -> str:
    """One line per config: medians over the edits."""
    def med(values):
        return float(np.median(values))

    table = []
    for label in dict.fromkeys(r["change"] for r in rows):
        rs = [r for r in rows if r["change"] == label]
        table.append([label, med([r["stage1_s"] + r["stage2_s"] for r in rs]),
                      med([r["heldout"]["opt_base"] / r["heldout"]["target_base"] for r in rs]),
                      med([r["heldout"]["opt_tuned"] / r["heldout"]["target_base"] for r in rs]),
                      med([r["rms_to_input"]["0.0"] for r in rs]), med([r["rms_to_input"]["0.7"] for r in rs]),
                      "n/a" if rs[0]["align_target"] is None else med([r["align_target"]["0.7"] for r in rs])])
    return markdown_table(["config (same samples per stage)", "stages 1+2 s (CPU)", "held-out loss, e_opt / e_tgt",
                           "held-out loss, tuned / e_tgt", "rms to input, eta 0", "rms to input, eta 0.7",
                           "target alignment, eta 0.7"], table)


def overrides(items: list[str]) -> dict:
    """["finetune_steps=50", ...] -> {"finetune_steps": 50, ...}, typed like the config's fields."""
    defaults = ImagicConfig().__dict__
    out = {}
    for item in items:
        name, _, value = item.partition("=")
        if name not in defaults:
            raise SystemExit(f"--set {item}: {name!r} is not an ImagicConfig field")
        kind = type(defaults[name])
        out[name] = (value.lower() in ("1", "true", "yes")) if kind is bool else kind(value)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="emoji")
    ap.add_argument("--preset", default="fast", choices=["fast", "paper"])
    ap.add_argument("--edits", default="apple,cat", help=f"comma-separated, from {sorted(EDITS)}")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: on the shared 2-core machine 2 threads ran a UNet call 80x slower)")
    ap.add_argument("--sweep", action="store_true", help="try the candidate fast presets instead")
    ap.add_argument("--batch-study", action="store_true",
                    help="the preset's (t, eps) samples per stage in fewer, larger Adam steps (batch 1 to 16)")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="override a preset field (repeatable)")
    ap.add_argument("--out-dir", default="outputs/bench_imagic")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from editing.models import load_model

    model = load_model(args.model, device="cpu")
    env = environment("cpu")
    if args.sweep:
        rows = sweep(model, args)
        write_results("imagic-sweep-", env, {"rows": rows})
        return 0
    if args.batch_study:
        rows = batch_study(model, args)
        path = write_results("imagic-batch-", env, {"rows": rows})
        print(batch_table(rows))
        print(f"wrote {path}")
        return 0
    config = ImagicConfig.from_preset(args.preset, model.family, **overrides(args.set))
    rows = [run_edit(model, name, config, Path(args.out_dir)) for name in args.edits.split(",")]
    path = write_results("imagic-", env, {"config": config.__dict__, "rows": rows})
    print(f"device: {env['device_name']} ({env['cpu_count']} cores, {env['torch_threads']} torch threads); "
          f"date {env['date_utc']} UTC; torch {env['torch']}; load {env['loadavg_start']}")
    print(f"command: {env['command']}")
    print(f"config: {config}")
    header = ["edit", "stage 1 (s)", "stage 2 (s)", "stage 3 (s)", "end to end (s)", "eta re-render (s, median)",
              "rms to input eta 0 / 0.7 / 1", "target alignment eta 0 / 0.7 / 1"]
    table = []
    for r in rows:
        rr = sorted(r["rerender_s"].values())
        al = r["align_target"]
        table.append([f"{r['source']} -> {r['target']}", r["stage1_s"], r["stage2_s"], r["stage3_s"], r["total_s"],
                      rr[len(rr) // 2], " / ".join(f"{r['rms_to_input'][e]:.3f}" for e in ("0.0", "0.7", "1.0")),
                      "n/a" if al is None else " / ".join(f"{al[e]:.3f}" for e in ("0.0", "0.7", "1.0"))])
    print(markdown_table(header, table))
    print(f"wrote {path} and the grids in {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
