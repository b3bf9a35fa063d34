"""Train the emoji model on a GPU machine that has no network and no MiniLM: pack, probe, train, finish.

The GPU machines lent to this project (see the model card, "GPU training") start bare, reach
nothing, take at most 64 MiB of working tree per call, run a command for at most 10 minutes, give
back at most 8 files of 16 MiB, and stay warm for only 30 s between calls. So:

    # here: the corpus (lossless WebP), every caption's MiniLM encoding (int8) and the wheels
    python -m training.gpu_kit pack --corpus .cache/corpus/emoji64.npz --out .gpukit
    # there, one call per <= 10 minutes, carry [".gpukit"]; first the throughput of each batch size
    # and variant (eager NCHW, eager channels_last, torch.compile), then the run with the fastest
    python -m training.gpu_kit probe --kit .gpukit --out $OUT --seconds 15 --batch-sizes 256
    # the checkpoint stays on the machine's disk (--run), the EMA weights come back each time, so a
    # lost machine costs one call, not all (--init-from: warm-start from weights of the same architecture)
    python -m training.gpu_kit train --kit .gpukit --run /tmp/emoji64 --out $OUT --max-minutes 25 --run-minutes 8 \
        --batch-size 256 --lr 4e-4 --compile
    # ... the last call adds --samples 1000 (held-out captions at each --scales value) for the KID
    # here again: the shipped folder from what came back
    python -m training.gpu_kit finish --from /work/.device/... --out assets/models/emoji --guidance 3

`train` takes the architecture flags of `training.train_diffusion` (defaults: the 64 px model of
the card, `DEFAULT_ARCH`, sized for the 2-core CPU's 250 ms a guided step). With `--init-from FOLDER` it warm-starts from the EMA shards an earlier call or session
brought back; with that call's run.json beside them, run.json reports the lineage and the totals.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from training.evaluate import heldout_prompts
from training.train_diffusion import (
    GRID_CAPTIONS,
    LAYOUT_CSV,
    TrainConfig,
    _tuple,
    build_scheduler,
    build_unet,
    encode_captions,
    sample,
    train,
    white_area,
)

CARRY_LIMIT = 64 * 2**20  # the working tree that travels, kit included
FILE_LIMIT = 16 * 2**20  # each file that comes back
SHARD_BYTES = 15 * 2**20
WHEELS = ("diffusers-", "importlib_metadata-")  # what the GPU image lacks for training (its torch, numpy, safetensors, opencv do)

# the 64 px model of the card: five levels (64, 32, 16, 8 and 4 px; attention at 8 and 4, as the shipped
# 32 px model has), 16.7 M parameters with the caption in the time embedding (the default), 33 MB in fp16.
# 3.7 GFLOP a 64 px image, so a guided step at batch 2 fits the 250 ms on the 2-core CPU; the
# first H100 run's four levels (64, 128, 192, 192; attention at 16 and 8 px) cost 11.0 GFLOP and 500 ms
# (the card's "The 64 px architecture: the CPU's 250 ms").
DEFAULT_ARCH = {"resolution": 64, "block_out_channels": (32, 64, 128, 192, 192), "attention": (False, False, False, True, True),
                "layers_per_block": 1, "attention_head_dim": 32, "norm_num_groups": 16}  # fmt: skip
CPU_GFLOP_BUDGET = 4.5  # a 64 px image's UNet forward the 2-core CPU can take within 250 ms a guided step (4 rows)


def unet_gflop_per_image(unet, cross_attention_dim: int = 384) -> float:
    """The UNet's forward FLOPs for one image at its own resolution (torch's FlopCounterMode), the
    machine-free figure `CPU_GFLOP_BUDGET` bounds."""
    from torch.utils.flop_counter import FlopCounterMode

    res = int(unet.config.sample_size)
    x = torch.randn(1, unet.config.in_channels, res, res)
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        unet(x, torch.tensor([500]), torch.randn(1, 1, cross_attention_dim))
    return fc.get_total_flops() / 1e9


# --- pack (here) ---------------------------------------------------------------------------------


def encode_images(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, H, W, 3) RGB -> (all lossless-WebP bytes as one uint8 array, offsets (N + 1,)).

    Lossless WebP: 34 MiB for the 17 029 64 px images, against 47 MiB as PNG (level 9) and 45 MiB
    as zlib-compressed raw arrays; the carry limit is what makes this matter."""
    import cv2

    blobs = []
    for img in images:
        ok, buf = cv2.imencode(".webp", np.ascontiguousarray(img[..., ::-1]), [cv2.IMWRITE_WEBP_QUALITY, 101])  # 101: lossless
        if not ok:
            raise RuntimeError("WebP encoding failed")
        blobs.append(buf.ravel())
    offsets = np.zeros(len(blobs) + 1, np.int64)
    offsets[1:] = np.cumsum([len(b) for b in blobs])
    return np.concatenate(blobs) if blobs else np.zeros(0, np.uint8), offsets


def decode_images(data: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    import cv2

    out = [cv2.imdecode(data[offsets[i] : offsets[i + 1]], cv2.IMREAD_COLOR)[..., ::-1] for i in range(len(offsets) - 1)]
    return np.stack(out)


def quantize(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 per vector (the last dimension): (int8 values, float32 scales)."""
    scale = x.abs().amax(dim=-1, keepdim=True).clamp_min(1e-12) / 127.0
    return torch.round(x / scale).clamp(-127, 127).to(torch.int8), scale.float()


def pack(corpus: Path, out: Path, conditioning: str = "pooled", max_length: int = 16, wheels: Path | None = Path(".whl"),
         encodings: torch.Tensor | None = None) -> dict:  # fmt: skip
    """Write the kit: corpus.npz (WebP bytes, caption index, split, flip), captions.safetensors
    (int8 encodings of every distinct caption, "" and the grid captions, with per-vector scales),
    captions.json, whl/.

    int8 rather than fp16 halves the encodings (6 MiB instead of 12.5) so that kit and tree fit the
    64 MiB a call carries; on unit-norm pooled MiniLM vectors the rounding moves each vector by a
    cosine distance of about 1e-4, far below the differences between captions."""
    from safetensors.torch import save_file

    d = np.load(corpus)
    out.mkdir(parents=True, exist_ok=True)
    data, offsets = encode_images(d["images"])
    texts = sorted(set(d["captions"].tolist()) | {""} | set(GRID_CAPTIONS))
    index = {t: i for i, t in enumerate(texts)}
    caption_idx = np.array([index[c] for c in d["captions"].tolist()], np.int32)
    np.savez(out / "corpus.npz", webp=data, offsets=offsets, caption_idx=caption_idx, heldout=d["split"] == "heldout",
             flip=d["flip"])  # fmt: skip
    if encodings is None:
        encodings = encode_captions(texts, conditioning, max_length)
    if encodings.shape[0] != len(texts):
        raise ValueError(f"{encodings.shape[0]} encodings for {len(texts)} captions")
    q, scale = quantize(encodings.float())
    save_file({"encodings_int8": q.contiguous(), "scales": scale.contiguous()}, out / "captions.safetensors")
    (out / "captions.json").write_text(json.dumps({"conditioning": conditioning, "max_length": max_length, "captions": texts}))
    copied = []
    if wheels is not None and wheels.exists():
        (out / "whl").mkdir(exist_ok=True)
        for w in sorted(wheels.glob("*.whl")):
            if w.name.startswith(WHEELS):
                shutil.copy2(w, out / "whl" / w.name)
                copied.append(w.name)
    kit_bytes = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    tree = tracked_bytes()
    err = 1 - torch.nn.functional.cosine_similarity((q.float() * scale).flatten(1), encodings.float().flatten(1), dim=1)
    missing = [w.rstrip("-") for w in WHEELS if not any(c.startswith(w) for c in copied)]
    report = {"images": int(len(offsets) - 1), "webp_mib": round(len(data) / 2**20, 1), "captions": len(texts),
              "int8_max_cosine_distance": float(err.max()), "wheels": copied, "wheels_missing": missing,
              "kit_mib": round(kit_bytes / 2**20, 1), "tracked_tree_mib": round(tree / 2**20, 1),
              "fits_carry": kit_bytes + tree <= CARRY_LIMIT}  # fmt: skip
    if not report["fits_carry"]:
        print(f"warning: kit {report['kit_mib']} MiB + tree {report['tracked_tree_mib']} MiB is over the 64 MiB a call may carry",
              file=sys.stderr)  # fmt: skip
    if missing:
        print(f"warning: no {' or '.join(missing)} wheel in {wheels}: the GPU machine lacks them and has no "
              "network, so `train` there cannot start; `pip download` them first (assets/models/emoji/README.md, 'Owed')",
              file=sys.stderr)  # fmt: skip
    return report


def tracked_bytes() -> int:
    try:
        files = subprocess.run(["git", "ls-files", "-z"], capture_output=True, check=True).stdout.split(b"\0")
    except (OSError, subprocess.CalledProcessError):
        return 0
    return sum(Path(f.decode()).stat().st_size for f in files if f and Path(f.decode()).is_file())


# --- train (there) -------------------------------------------------------------------------------


class Kit:
    """The packed corpus and caption encodings, with a lookup that needs no MiniLM."""

    def __init__(self, folder: Path):
        from safetensors.torch import load_file

        self.folder = folder
        z = np.load(folder / "corpus.npz")
        self.images = decode_images(z["webp"], z["offsets"])
        meta = json.loads((folder / "captions.json").read_text())
        self.conditioning, self.max_length = meta["conditioning"], meta["max_length"]
        self.texts = meta["captions"]
        self.index = {t: i for i, t in enumerate(self.texts)}
        self.captions = np.array(self.texts, dtype=object)[z["caption_idx"]].astype(str)
        self.split = np.where(z["heldout"], "heldout", "train")
        self.flip = z["flip"]
        enc = load_file(folder / "captions.safetensors")
        self.encodings = enc["encodings_int8"].float() * enc["scales"]  # (U, L, 384)

    def encode(self, captions: list[str]) -> torch.Tensor:
        missing = [c for c in captions if c not in self.index]
        if missing:
            raise KeyError(f"captions not in the kit (pack again): {missing[:3]}")
        return self.encodings[[self.index[c] for c in captions]]

    def data(self, split: str = "train") -> dict[str, np.ndarray]:
        m = self.split == split
        return {"images": self.images[m], "captions": self.captions[m], "flip": self.flip[m]}

    def row_encodings(self, captions: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(encodings of the kit's captions, row -> index), the form `train` takes."""
        return self.encodings, torch.tensor([self.index[c] for c in captions.tolist()], dtype=torch.int64)


def load_samples(path: Path) -> tuple[list[str], dict[float, np.ndarray]]:
    """A samples.npz from `train --samples` -> (prompts, {guidance scale: uint8 (N, H, W, 3)}).

    Reads WebP-coded scales (`scale_<s>_webp` + `scale_<s>_offsets`) and plain arrays (`scale_<s>`)."""
    z = np.load(path)
    out: dict[float, np.ndarray] = {}
    for key in z.files:
        if key.startswith("scale_") and key.endswith("_webp"):
            name = key.removesuffix("_webp")
            out[float(name.removeprefix("scale_"))] = decode_images(z[key], z[f"{name}_offsets"])
        elif key.startswith("scale_") and not key.endswith("_offsets"):
            out[float(key.removeprefix("scale_"))] = z[key]
    return z["prompts"].tolist(), dict(sorted(out.items()))


def save_shards(state: dict[str, torch.Tensor], out: Path, prefix: str = "ema", limit: int = SHARD_BYTES) -> list[Path]:
    """fp16 state dict -> prefix-00.safetensors, prefix-01... each at most `limit` bytes of tensors."""
    from safetensors.torch import save_file

    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for k, v in state.items():
        v = v.detach().to("cpu", torch.float16).contiguous()
        n = v.numel() * v.element_size()
        if n > limit:
            raise ValueError(f"{k} alone is {n} bytes, over the {limit}-byte shard limit")
        if size + n > limit and shards[-1]:
            shards.append({})
            size = 0
        shards[-1][k] = v
        size += n
    paths = []
    for i, sh in enumerate(shards):
        p = out / f"{prefix}-{i:02d}.safetensors"
        save_file(sh, p)
        paths.append(p)
    return paths


def load_shards(folder: Path, prefix: str = "ema") -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    state: dict[str, torch.Tensor] = {}
    files = sorted(folder.glob(f"{prefix}-*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no {prefix}-NN.safetensors in {folder}")
    for f in files:
        state.update(load_file(f))
    return state


def train_on_kit(kit: Kit, cfg: TrainConfig, out: Path, samples: int = 0, scales: tuple[float, ...] = (2.0, 3.0),
                 sample_steps: int = 25) -> dict:  # fmt: skip
    """Train (resuming from cfg.out's checkpoint), then put what must come back under `out`."""
    from diffusers.training_utils import EMAModel

    data = kit.data("train")
    run = Path(cfg.out)
    if cfg.init_from and not (run / "ckpt.pt").exists() and (Path(cfg.init_from) / "run.json").is_file():
        # where this run's weights began (an earlier session's run.json beside its shards): kept with the
        # checkpoint, so every later call of this run reports the whole lineage and its totals
        prev = json.loads((Path(cfg.init_from) / "run.json").read_text())
        run.mkdir(parents=True, exist_ok=True)
        (run / "init.json").write_text(json.dumps({
            "training": prev["training"], "device": prev.get("device"), "init": prev.get("init"),
            "training_total": prev.get("training_total", prev["training"])}, indent=1))  # fmt: skip
    t0 = time.time()
    r = train(cfg, data, kit.row_encodings(data["captions"]), kit.encode([""]), kit.encode(list(cfg.grid_captions)))
    wall = time.time() - t0
    ema: EMAModel = r["ema"]
    unet = build_unet(cfg)
    ema.copy_to(unet.parameters())
    out.mkdir(parents=True, exist_ok=True)
    shards = save_shards(unet.state_dict(), out)
    grids = sorted((run / "samples").glob("step*.png"))
    if grids:
        shutil.copy2(grids[-1], out / "grid.png")
    device = next(r["unet"].parameters()).device
    layout_csv = run / "samples" / LAYOUT_CSV
    info = {
        "config": asdict(cfg),
        "unet_config": dict(unet.config),
        "scheduler_config": dict(build_scheduler(cfg).config),
        "training": {"steps": r["steps"], "images_seen": r["images_seen"], "minutes": round(r["minutes"], 2)},
        "this_call": {"steps": len(r["losses"]), "seconds": round(wall, 1),
                      "steps_per_s": round(len(r["losses"]) / wall, 2) if wall else None,
                      "compiled": r["compiled"], "compile_error": r["compile_error"]},  # fmt: skip
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "loss_csv": (run / "loss.csv").read_text() if (run / "loss.csv").exists() else "",
        # the logged grids' layout figure (train_diffusion.white_area; corpus 0.49): are objects on white yet?
        "white_area_csv": layout_csv.read_text() if layout_csv.exists() else "",
        **_lineage(run, r),
        "shards": [p.name for p in shards],
    }
    if samples:
        unet = unet.to(device).eval()
        prompts = heldout_prompts(kit.captions[kit.split == "heldout"], samples, seed=1)  # as `training.evaluate kid`
        arrays, timing, layout = {}, {}, {}
        for s in scales:
            t = time.time()
            images = sample(unet, info["scheduler_config"], kit.encode(prompts), kit.encode([""]), guidance_scale=s,
                            steps=sample_steps, seed=1, batch=256)  # fmt: skip
            arrays[f"scale_{s:g}_webp"], arrays[f"scale_{s:g}_offsets"] = encode_images(images)
            timing[f"{s:g}"] = round(time.time() - t, 2)
            layout[f"{s:g}"] = round(white_area(images), 4)
        # lossless WebP: 3 scales x 1 000 samples at 64 px were over 16 MiB as compressed arrays
        np.savez(out / "samples.npz", prompts=np.array(prompts), **arrays)
        info["samples"] = {"n": samples, "scales": list(scales), "ddim_steps": sample_steps, "seed": 1, "seconds": timing,
                           "white_area": layout}
    (out / "run.json").write_text(json.dumps(info, indent=1))
    for f in out.iterdir():
        if f.is_file() and f.stat().st_size > FILE_LIMIT:
            print(f"warning: {f.name} is over 16 MiB and will not come back", file=sys.stderr)
    return info


PROBE_VARIANTS = ("nchw", "cl", "compile")  # eager NCHW, eager channels_last, compiled (inductor picks the layout)


def _variant(name: str) -> dict:
    """A probe variant's name -> its TrainConfig fields: nchw, cl, compile, compile-cl."""
    fields = {"nchw": {"channels_last": False, "compile": False}, "cl": {"channels_last": True, "compile": False},
              "compile": {"channels_last": False, "compile": True}, "compile-cl": {"channels_last": True, "compile": True}}  # fmt: skip
    if name not in fields:
        raise SystemExit(f"unknown probe variant {name!r}; allowed: {', '.join(fields)}")
    return fields[name]


def _stop_after_first_row(folder: Path, seconds: float, done: threading.Event) -> None:
    """Touch folder/STOP `seconds` after the run's first loss row: every variant gets the same
    steady time however long its set-up and compilation took."""
    log = folder / "loss.csv"
    while not done.is_set():
        if log.exists() and log.read_text().count("\n") >= 2:
            break
        time.sleep(0.05)
    if not done.wait(seconds):
        (folder / "STOP").touch()


def _lineage(run: Path, r: dict) -> dict:
    """{"init": the earlier run this one warm-started from, "training_total": both together} or {}."""
    if not (run / "init.json").is_file():
        return {}
    init = json.loads((run / "init.json").read_text())
    before = init["training_total"]
    total = {"steps": before["steps"] + r["steps"], "images_seen": before["images_seen"] + r["images_seen"],
             "minutes": round(before["minutes"] + r["minutes"], 2)}  # fmt: skip
    return {"init": init, "training_total": total}


def probe(kit: Kit, cfg: TrainConfig, out: Path, batch_sizes: tuple[int, ...] = (128, 256), seconds: float = 20.0,
          variants: tuple[str, ...] = PROBE_VARIANTS, compile_limit_s: float = 300.0) -> dict:  # fmt: skip
    """Training throughput of short fresh runs per batch size and variant (eager NCHW, eager
    channels_last, torch.compile), so that a GPU session measures what to train with before the long
    run spends its minutes (the first H100 run, eager NCHW at batch 128, made 9 steps/s: 38 TFLOP/s,
    4 % of the GPU's bf16 peak). Each variant runs `seconds` after its first logged step; the time
    to that step (set-up, and compilation where it compiles) is reported apart. A variant that fails
    (a compiler missing on the machine, say) is reported with its error and the probe goes on."""
    import dataclasses
    import tempfile

    data = kit.data("train")
    enc, empty = kit.row_encodings(data["captions"]), kit.encode([""])
    settings = {v: _variant(v) for v in variants}  # unknown names fail here
    rows, params = [], None
    for b in batch_sizes:
        for v in variants:
            row: dict = {"batch_size": b, "variant": v, **settings[v]}
            with tempfile.TemporaryDirectory() as d:
                c = dataclasses.replace(cfg, out=d, batch_size=b, **settings[v], max_minutes=None,
                                        max_steps=None, run_minutes=(seconds + compile_limit_s) / 60, init_from=None,
                                        grid_captions=[], checkpoint_minutes=1e9, sample_minutes=1e9, progress=False,
                                        log_every=5)  # fmt: skip
                done = threading.Event()
                watcher = threading.Thread(target=_stop_after_first_row, args=(Path(d), seconds, done), daemon=True)
                watcher.start()
                t = time.time()
                try:
                    r = train(c, data, enc, empty)
                except Exception as e:  # noqa: BLE001 - recorded in the report; the other variants still run
                    row.update(error=f"{type(e).__name__}: {e}"[:500], seconds=round(time.time() - t, 1))
                    rows.append(row)
                    print(row, flush=True)
                    continue
                finally:
                    done.set()
                    watcher.join()
                wall = time.time() - t
                log = np.loadtxt(Path(d) / "loss.csv", delimiter=",", skiprows=1, usecols=(0, 5), ndmin=2)
            params = list(r["unet"].parameters())
            # steady rate: between the first and the last logged step (no set-up, no compilation)
            span_s = (log[-1, 1] - log[0, 1]) * 60 if len(log) > 1 else 0.0
            steady = (log[-1, 0] - log[0, 0]) / span_s if span_s > 0 else None
            row.update(steps=r["steps"], seconds=round(wall, 1), first_row_s=round(float(log[0, 1]) * 60, 1) if len(log) else None,
                       steady_s=round(float(span_s), 1), steps_per_s=round(float(steady), 2) if steady else None,
                       images_per_s=round(steady * b) if steady else None)  # fmt: skip
            if r["compile_error"]:  # it fell back to eager after the first step
                row.update(compiled=False, compile_error=r["compile_error"])
            rows.append(row)
            print(row, flush=True)
    device = params[0].device if params else torch.device("cpu")  # the last run's network: where `train` put it
    ok = [r for r in rows if r.get("images_per_s")]
    best = max(ok, key=lambda r: r["images_per_s"]) if ok else None
    report = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu", "torch": torch.__version__,
              "parameters": sum(p.numel() for p in params) if params else None, "seconds_each": seconds, "rows": rows,
              "fastest": best and {k: best[k] for k in ("batch_size", "variant", "images_per_s")},
              "train_flags": best and _flags_for(best)}  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    (out / "probe.json").write_text(json.dumps(report, indent=1))
    return report


def _flags_for(row: dict) -> str:
    """The `train` flags that give a probe row's setting."""
    return " ".join([f"--batch-size {row['batch_size']}", *(["--channels-last"] if row.get("channels_last") else []),
                     *(["--compile"] if row.get("compile") else [])])  # fmt: skip


# --- finish (here) -------------------------------------------------------------------------------


def finish(src: Path, out: Path, guidance_scale: float, status: str = "GPU-trained", edit_guidance_scale: float | None = None,
           edit_skip_fraction: float | None = None, shift_skip_fraction: float | None = None) -> dict:
    """What a `train` call brought back -> the shipped diffusers folder (via export_model.write_model)."""
    from diffusers import UNet2DConditionModel

    from training.export_model import write_model

    info = json.loads((src / "run.json").read_text())
    unet = UNet2DConditionModel.from_config(info["unet_config"])
    unet.load_state_dict({k: v.float() for k, v in load_shards(src).items()})
    # a warm-started run ships its totals, with the runs it grew from
    training = {**info.get("training_total", info["training"]), "device": info["device"],
                **({"this_run": info["training"], "init": info["init"]} if "init" in info else {})}  # fmt: skip
    return write_model(unet, info["scheduler_config"], info["config"], training, out, guidance_scale, status, edit_guidance_scale,
                       edit_skip_fraction, shift_skip_fraction)


# --- command line --------------------------------------------------------------------------------


def _train_flags(t: argparse.ArgumentParser) -> None:
    """The flags `train` and `probe` share: the kit, the architecture, the optimiser, the device."""
    t.add_argument("--kit", type=Path, default=Path(".gpukit"))
    t.add_argument("--run", type=Path, default=Path("/tmp/emoji64"), help="checkpoint folder (stays on the machine's disk)")
    t.add_argument("--out", type=Path, required=True, help="what comes back ($OUT)")
    t.add_argument("--max-minutes", type=float, default=25.0, help="in all, over the calls (the cosine decay spans it)")
    t.add_argument("--run-minutes", type=float, default=8.0, help="this call")
    t.add_argument("--max-steps", type=int, default=None)
    t.add_argument("--batch-size", type=int, default=128)
    t.add_argument("--lr", type=float, default=2e-4)
    t.add_argument("--warmup-steps", type=int, default=1000)
    t.add_argument("--ema-max-decay", type=float, default=0.9995)
    t.add_argument("--snr-gamma", type=float, default=TrainConfig.snr_gamma, help="Min-SNR-gamma loss weighting; 0: off")
    t.add_argument("--schedule-shift", type=float, default=1.0, help="log-SNR shift as a resolution ratio (2: the 32 px "
                   "schedule's SNR at 64 px); 1: none. Keep it across the calls and sessions of one run")  # fmt: skip
    t.add_argument("--resolution", type=int, default=DEFAULT_ARCH["resolution"])
    t.add_argument("--channels", type=_tuple(int), default=DEFAULT_ARCH["block_out_channels"])
    t.add_argument("--attention", type=_tuple(lambda v: v == "1"), default=DEFAULT_ARCH["attention"])
    t.add_argument("--layers-per-block", type=int, default=DEFAULT_ARCH["layers_per_block"])
    t.add_argument("--attention-head-dim", type=int, default=DEFAULT_ARCH["attention_head_dim"])
    t.add_argument("--norm-groups", type=int, default=DEFAULT_ARCH["norm_num_groups"])
    t.add_argument("--text-time-embedding", action=argparse.BooleanOptionalAction, default=TrainConfig.text_time_embedding,
                   help="also add the caption to the time embedding, so it reaches every ResNet block (a warm start "
                        "without it begins with the path silent)")  # fmt: skip
    t.add_argument("--channels-last", action="store_true", help="the UNet in channels_last (NHWC); see `probe`")
    t.add_argument("--compile", action="store_true", help="torch.compile the UNet (the first steps compile); see `probe`")
    t.add_argument("--compile-backend", default="inductor", help="torch.compile's backend (aot_eager: tracing only, for tests)")
    t.add_argument("--sample-minutes", type=float, default=4.0)
    t.add_argument("--checkpoint-minutes", type=float, default=2.0)
    t.add_argument("--init-from", default=None, help="warm start (no checkpoint yet): a UNet folder, a safetensors file, "
                   "or a folder of ema-NN.safetensors brought back by an earlier call")  # fmt: skip
    t.add_argument("--samples", type=int, default=0, help="held-out-caption samples per scale, for the KID (0: none)")
    t.add_argument("--scales", type=_tuple(float), default=(2.0, 3.0))
    t.add_argument("--device", default="auto")
    t.add_argument("--threads", type=int, default=8)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--quiet", action="store_true")



def _config(a: argparse.Namespace, kit: Kit) -> TrainConfig:
    return TrainConfig(
        corpus=str(a.kit / "corpus.npz"), out=str(a.run), resolution=a.resolution, block_out_channels=a.channels,
        attention=a.attention, layers_per_block=a.layers_per_block, attention_head_dim=a.attention_head_dim,
        norm_num_groups=a.norm_groups, conditioning=kit.conditioning, max_length=kit.max_length,
        text_time_embedding=a.text_time_embedding,
        batch_size=a.batch_size, lr=a.lr, warmup_steps=a.warmup_steps, ema_max_decay=a.ema_max_decay,
        snr_gamma=a.snr_gamma, schedule_shift=a.schedule_shift, max_steps=a.max_steps, max_minutes=a.max_minutes, run_minutes=a.run_minutes, init_from=a.init_from,
        checkpoint_minutes=a.checkpoint_minutes, sample_minutes=a.sample_minutes, device=a.device,
        channels_last=a.channels_last, compile=a.compile, compile_backend=a.compile_backend, threads=a.threads, seed=a.seed, progress=not a.quiet,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack", help="here: corpus + caption encodings + wheels -> a kit folder to carry")
    p.add_argument("--corpus", type=Path, default=Path(".cache/corpus/emoji64.npz"))
    p.add_argument("--out", type=Path, default=Path(".gpukit"))
    p.add_argument("--conditioning", choices=["pooled", "tokens"], default="pooled")
    p.add_argument("--wheels", type=Path, default=Path(".whl"))

    t = sub.add_parser("train", help="there: train from the kit, resuming; EMA weights + run.json (+ samples) to --out")
    _train_flags(t)
    q = sub.add_parser("probe", help="there: steps/s of short runs per batch size and variant -> --out/probe.json")
    _train_flags(q)
    q.add_argument("--seconds", type=float, default=20.0, help="each variant's run")
    q.add_argument("--batch-sizes", type=_tuple(int), default=(128, 256))
    q.add_argument("--variants", type=_tuple(str), default=PROBE_VARIANTS, help="of nchw, cl, compile, compile-cl")
    q.add_argument("--compile-limit", type=float, default=300.0, help="seconds a variant may take to its first logged step")

    f = sub.add_parser("finish", help="here: what came back -> the shipped model folder")
    f.add_argument("--from", dest="src", type=Path, required=True)
    f.add_argument("--out", type=Path, default=Path("assets/models/emoji"))
    f.add_argument("--guidance", type=float, required=True)
    f.add_argument("--edit-guidance", type=float, default=None, help="text edits' target guidance (docs/edit/edit_study.py)")
    f.add_argument("--edit-skip-fraction", type=float, default=None, help="text edits' T_skip / inversion steps (the same study)")
    f.add_argument("--shift-skip-fraction", type=float, default=None, help="image shifts' T_skip / steps (docs/shift/shift_study.py)")
    f.add_argument("--status", default="GPU-trained")
    a = ap.parse_args(argv)

    if a.cmd == "pack":
        print(json.dumps(pack(a.corpus, a.out, a.conditioning, wheels=a.wheels), indent=1))
    elif a.cmd == "train":
        kit = Kit(a.kit)
        info = train_on_kit(kit, _config(a, kit), a.out, a.samples, a.scales)
        print(json.dumps({k: info[k] for k in ("training", "this_call", "device", "shards")}, indent=1))
    elif a.cmd == "probe":
        kit = Kit(a.kit)
        print(json.dumps(probe(kit, _config(a, kit), a.out, a.batch_sizes, a.seconds, a.variants, a.compile_limit), indent=1))
    elif a.cmd == "finish":
        print(json.dumps(finish(a.src, a.out, a.guidance, a.status, a.edit_guidance, a.edit_skip_fraction, a.shift_skip_fraction),
                         indent=1))


if __name__ == "__main__":
    main()
