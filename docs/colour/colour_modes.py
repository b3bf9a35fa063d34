"""Colour edit: the two ways of pushing the colour in, measured on the embedded emoji model.

    python docs/colour/colour_modes.py            # writes docs/colour/colour-modes.png and .json
    python docs/colour/colour_modes.py --keep-study   # keep_outside off/on: docs/colour/keep-outside.png and .json

Sources: SDEdit outputs of the three example guides (so nothing outside the repository is needed).
Each source is inverted (50 steps, eta 1), then recoloured inside a mask (the guide's flat
object colour: the apple's red, the heart's red, the smiley's yellow, so the eyes and mouth stay
out) over steps 0-30, with mode "x0" at several strengths and mode "noise" (the authors' code) at
several alphas. Per result:

- share: how far the mean colour inside the mask moved from the plain regeneration's towards the
  target colour (projection on the target direction; 1 = reached it);
- outside: the RMS change outside the mask against the plain regeneration, on [0, 1] pixels (what
  the edit should leave alone).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import editing  # noqa: E402
from editing import ColorEditConfig, InversionConfig, SDEditConfig, final  # noqa: E402
from editing.images import load_image, resize_image  # noqa: E402
from editing.inversion import color_edit, invert  # noqa: E402
from editing.sdedit import sdedit  # noqa: E402

# (guide, prompt, HSV test for the object's flat colour in the guide, target RGB)
CASES = [
    ("apple.png", "red apple, google style", lambda h, s, v: ((h < 10) | (h > 170)) & (s > 120), (40, 170, 40)),
    ("heart.png", "red heart, twemoji style", lambda h, s, v: ((h < 10) | (h > 170)) & (s > 120), (40, 80, 220)),
    ("smiley.png", "grinning face, google style", lambda h, s, v: (h > 15) & (h < 40) & (s > 120) & (v > 150), (230, 120, 200)),
]
STRENGTHS = (0.25, 0.5, 0.75, 0.9, 1.0)
ALPHAS = (0.02, 0.05, 0.1, 0.2, 0.5)
KEEP_STRENGTHS = (0.5, 0.9, 1.0)


def measure(out: np.ndarray, base: np.ndarray, mask: np.ndarray, target: np.ndarray) -> dict[str, float]:
    o, b = out.astype(np.float64) / 255, base.astype(np.float64) / 255
    d = target / 255 - b[mask].mean(0)
    share = float(np.dot(o[mask].mean(0) - b[mask].mean(0), d) / np.dot(d, d))
    outside = float(np.sqrt(((o[~mask] - b[~mask]) ** 2).mean()))
    return {"share": round(share, 3), "outside": round(outside, 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="emoji")
    ap.add_argument("--out", default=str(ROOT / "docs" / "colour" / "colour-modes"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--keep-study", action="store_true", help="mode x0 with keep_outside off and on, instead")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model = editing.load_model(a.model)
    if a.keep_study:
        a.out = a.out.replace("colour-modes", "keep-outside")
    rows, results = [], []
    for guide_name, prompt, test, target in CASES:
        guide = resize_image(load_image(ROOT / "assets" / "examples" / guide_name), (256, 256))
        hsv = cv2.cvtColor(guide, cv2.COLOR_RGB2HSV).astype(int)
        mask = test(hsv[..., 0], hsv[..., 1], hsv[..., 2])
        source = final(sdedit(model, guide, SDEditConfig(t0=0.5, steps=50, seed=0, guidance_scale=2.0), prompt=prompt))
        colour = source.copy()
        colour[mask] = target
        inv = final(invert(model, source, prompt, InversionConfig(steps=50, seed=0)))
        base = final(color_edit(model, inv, colour, mask, prompt, ColorEditConfig(strength=0.0, t2=30)))
        row = [source, colour]
        if a.keep_study:
            runs = [(f"x0{' kept' if k else ''}", "strength", v, ColorEditConfig(strength=v, t2=30, keep_outside=k))
                    for k in (False, True) for v in KEEP_STRENGTHS]  # fmt: skip
        else:
            runs = [("x0", "strength", v, ColorEditConfig(strength=v, t2=30)) for v in STRENGTHS]
            runs += [("noise", "alpha", v, ColorEditConfig(mode="noise", alpha=v, t2=30)) for v in ALPHAS]
        for mode, name, value, cfg in runs:
            out = final(color_edit(model, inv, colour, mask, prompt, cfg))
            m = measure(out, base, mask, np.array(target, float))
            results.append({"case": guide_name, "mode": mode, name: value, **m})
            print(f"{guide_name:11s} {mode:8s} {name}={value:<5} share {m['share']:6.3f}  outside rms {m['outside']:.4f}", flush=True)
            row.append(out)
        rows.append(np.concatenate(row, 1))
    grid = np.concatenate(rows, 0)
    grid = resize_image(grid, (grid.shape[0] // 2, grid.shape[1] // 2))
    png_path = Path(a.out + ".png")
    cv2.imwrite(str(png_path), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    meta = {
        "model": model.model_id,
        "weights_hash": model.weights_hash,
        "inversion": {"steps": 50, "eta": 1.0, "seed": 0},
        "pulled_steps": [0, 30],
        "columns": ["source", "colour image"]
        + ([f"x0 {v}{k}" for k in ("", " kept") for v in KEEP_STRENGTHS] if a.keep_study
           else [f"x0 {v}" for v in STRENGTHS] + [f"noise {v}" for v in ALPHAS]),
        "results": results,
    }
    Path(a.out + ".json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"wrote {png_path} and {a.out}.json")


if __name__ == "__main__":
    main()
