"""The emoji model's architectures on the 2-core CPU (issue 3's speed target): which 64 px UNet fits.

    python benchmarks/bench_arch_cpu.py              # the shipped 32 px model, and the two 64 px UNets
    python benchmarks/bench_arch_cpu.py --all        # and the other 64 px candidates that were weighed

Issue 3 asks for one guided denoising step at batch 2 (one UNet call on 4 rows: 2 conditional, 2
unconditional) within 250 ms on the 2-core CPU, and an SDEdit edit at t0 0.5 within a few seconds.
Speed does not depend on the weights, so every UNet but the shipped one is built with random
weights, as `training.train_diffusion.build_unet` builds it for training (the caption in the time
embedding, the default). In one process, alternating between the architectures after a warm-up
of each (medians; min and max in the JSON):
- parameters, fp16 size and the forward FLOPs of one image at the model's resolution (FlopCounterMode);
- a guided step at batch 2, NCHW and channels_last (the layout `editing.fastpath.accelerate`
  gives the studio and the command line);
- an SDEdit edit at t0 0.5 (50-step schedule, 25 guided DDPM steps at guidance 3, a 256 px painted
  guide) through the engine, accelerated as the studio runs it (the three main rows only).
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import environment, interleaved, markdown_table, ms, write_results  # noqa: E402
from training.gpu_kit import DEFAULT_ARCH, unet_gflop_per_image  # noqa: E402

TARGET_MS = 250.0
PROMPT = "red apple, google style"
SHIPPED = "shipped 32 px (32-64-64-96, attention at 8 and 4 px)"  # its folder, its real weights
DEFAULT = "64 px, the kit's default: five levels (32-64-128-192-192, attention at 8 and 4 px)"
# name -> the TrainConfig fields that differ from the kit's default
MAIN = {
    "64 px, H100 run 1's four levels (64-128-192-192, attention at 16 and 8 px)":
        {"block_out_channels": (64, 128, 192, 192), "attention": (False, False, True, True), "norm_num_groups": 32},
    DEFAULT: {},
}
OTHERS = {
    "64 px, 32-64-128-192, attention at 16 and 8 px": {"block_out_channels": (32, 64, 128, 192), "attention": (False, False, True, True)},
    "64 px, 32-64-128-192, attention at 8 px": {"block_out_channels": (32, 64, 128, 192), "attention": (False, False, False, True)},
    "64 px, 32-64-96-128-192, attention at 8 and 4 px": {"block_out_channels": (32, 64, 96, 128, 192)},
    "64 px, 32-64-128-192-256, attention at 8 and 4 px": {"block_out_channels": (32, 64, 128, 192, 256)},
}  # fmt: skip


def build(changes: dict) -> torch.nn.Module:
    from training.train_diffusion import TrainConfig, build_unet

    torch.manual_seed(0)
    return build_unet(TrainConfig(**{**DEFAULT_ARCH, **changes})).eval().requires_grad_(False)


def model_folder(unet, root: Path) -> Path:
    from diffusers import DDPMScheduler

    from editing.models.pixel_text import save_pixel_text

    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2")
    return save_pixel_text(root / f"m{len(list(root.iterdir()))}", unet, scheduler, text_conditioning="pooled",
                           resolution=int(unet.config.sample_size), recommended_guidance_scale=1.0)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=15, help="guided steps timed per layout and architecture")
    p.add_argument("--edits", type=int, default=3, help="SDEdit edits timed per main architecture (0: none)")
    p.add_argument("--all", action="store_true", help="also the other 64 px candidates (step figures only)")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    env = environment("cpu")

    import editing
    from editing.fastpath import accelerate
    from editing.models import load_model
    from editing.sdedit import sdedit
    from training.evaluate import paint_guides

    names = [SHIPPED, *MAIN, *(OTHERS if a.all else {})]
    specs = {**MAIN, **OTHERS}
    shipped = Path(__file__).resolve().parents[1] / "assets" / "models" / "emoji"
    folders = {SHIPPED: shipped}
    unets = {SHIPPED: load_model(str(shipped), device="cpu", dtype=torch.float32).unet.eval()}
    root = Path(tempfile.mkdtemp(prefix="arch-"))
    for name in names[1:]:
        unets[name] = build(specs[name])
        if name in MAIN:
            folders[name] = model_folder(unets[name], root)
    ctx = torch.nn.functional.normalize(torch.randn(4, 1, 384, generator=torch.Generator().manual_seed(0)), dim=-1)
    t = torch.full((4,), 500.0)
    steps, results = {}, {}
    with torch.no_grad():
        for name, unet in unets.items():
            res = int(unet.config.sample_size)
            x = torch.randn(4, 3, res, res)
            net_cl = copy.deepcopy(unet).to(memory_format=torch.channels_last)
            x_cl = x.contiguous(memory_format=torch.channels_last)
            steps[f"{name} | nchw"] = lambda u=unet, x=x: u(x, t, ctx)
            steps[f"{name} | channels_last"] = lambda u=net_cl, x=x_cl: u(x, t, ctx)
            n = sum(q.numel() for q in unet.parameters())
            results[name] = {"parameters": n, "resolution": res, "fp16_mb": 2 * n / 1e6, "gflop_per_image": unet_gflop_per_image(unet)}
        print(f"timing {len(steps)} guided steps x {a.repeats}, interleaved ...", flush=True)
        for key, st in interleaved(steps, "cpu", a.repeats, warmup=2).items():
            name, layout = key.split(" | ")
            results[name][f"guided_step_batch2_{layout}"] = st.as_dict()
    if a.edits:
        guide = paint_guides()["apple"]
        models = {name: accelerate(load_model(str(f), device="cpu", dtype=torch.float32)) for name, f in folders.items()}
        cfg = editing.SDEditConfig(t0=0.5, steps=50, seed=0, guidance_scale=3.0)
        edits = {name: (lambda m=m: editing.final(sdedit(m, guide, cfg, prompt=PROMPT))) for name, m in models.items()}
        print(f"timing {len(edits)} SDEdit edits x {a.edits}, interleaved ...", flush=True)
        for name, st in interleaved(edits, "cpu", a.edits, warmup=1).items():
            results[name]["sdedit_t0_0.5"] = st.as_dict()
    rows = []
    for name in names:
        r = results[name]
        step = ms(r["guided_step_batch2_channels_last"]["median_s"])
        edit = r.get("sdedit_t0_0.5", {}).get("median_s")
        rows.append([name, f"{r['parameters'] / 1e6:.1f} M", f"{r['fp16_mb']:.0f}", round(r["gflop_per_image"], 2),
                     round(ms(r["guided_step_batch2_nchw"]["median_s"])), round(step), None if edit is None else round(edit, 2),
                     "yes" if step <= TARGET_MS else "**no**"])  # fmt: skip
    table = markdown_table(["UNet", "parameters", "fp16 MB", "GFLOP / image", "guided step, batch 2, NCHW ms",
                            "channels_last ms", "SDEdit t0 0.5 s", f"<= {TARGET_MS:.0f} ms"], rows)  # fmt: skip
    print("\n" + table)
    print(write_results("arch-", env, {"rows": results, "table": table}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
