"""Stable Diffusion 1.5-sized benchmarks: ours against diffusers' pipelines, in one run, on the same
components and inputs (issue 6).

    python benchmarks/bench_gpu.py --device cuda --dtype float16            # the figures (H100)
    python benchmarks/bench_gpu.py --device cuda --dtype float16 --ablation # each fast-path toggle
    python benchmarks/bench_gpu.py --device cpu --dtype float32 --scale small  # CPU smoke run

Speed does not depend on the weights' values, so SD 1.5's published architectures
(benchmarks/configs/sd15/*.json) are built with random weights, saved as a StableDiffusionPipeline
folder and loaded by OUR `editing.load_model`; the peers (StableDiffusionImg2ImgPipeline,
LEditsPPPipelineStableDiffusion) are built on the very same UNet, text encoder and tokenizer
(their VAE is a copy in the model dtype: diffusers' img2img feeds the VAE model-dtype tensors,
while our bundle runs SD's VAE in float32 as diffusers' `force_upcast` asks). The tokenizer is a
570-token test vocabulary: prompts still go through tokenizer and text encoder on both sides.
`--scale small` keeps every architecture and step count but shrinks the widths (a CPU smoke run).

Equal work: the same sampler (DDIM, eta 0), the same number of steps, CFG as one batch-2 UNet call
on both sides; UNet calls and rows per run are counted with a forward hook and reported.
Timing: warm-up, then repeats alternating ours/peer; medians; CUDA events + synchronize on GPUs.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import (  # noqa: E402
    CONFIGS,
    TINY_CLIP,
    CallCounter,
    environment,
    interleaved,
    kept_attention,
    markdown_table,
    module_gib,
    ms,
    peak_memory,
    sync,
    timed,
    write_results,
)
from editing.interface import final  # noqa: E402
from editing.inversion import edit, invert, steps_per_call  # noqa: E402
from editing.sdedit import sdedit  # noqa: E402

PROMPT = "a photograph of a red car parked on a quiet street"
SOURCE = "a photograph of a car parked on a street"
TARGET = "a photograph of a blue sports car parked on a street"
H100_BF16_DENSE_TFLOPS = 989.0  # H100 SXM, dense bf16/fp16 tensor-core peak (NVIDIA datasheet)
SWEEP_T0S = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)

# --scale small: the same block types, depths and step counts, narrow widths (a CPU smoke run).
SMALL = {
    "unet": {"block_out_channels": [32, 64, 64, 64], "cross_attention_dim": 64, "sample_size": 16},
    "vae": {"block_out_channels": [32, 32, 64, 64], "sample_size": 128},
    "text_encoder": {"hidden_size": 64, "intermediate_size": 256, "num_hidden_layers": 2, "num_attention_heads": 4,
                     "projection_dim": 64},
}


def long_timestep_ddim():
    from diffusers import DDIMScheduler

    class LongTimestepDDIM(DDIMScheduler):
        """diffusers 0.42.1's LEdits++ `invert` calls `add_noise(x0, noise, torch.Tensor([t]))`: a
        float index, which DDIMScheduler.add_noise rejects (IndexError). This shim casts it to an
        integer index; everything else is DDIMScheduler as shipped."""

        def add_noise(self, original_samples, noise, timesteps):
            return super().add_noise(original_samples, noise, timesteps.long())

    return LongTimestepDDIM


# ----------------------------------------------------------------------------- components
def sd15_config(part: str, scale: str) -> dict:
    cfg = json.loads((CONFIGS / "sd15" / f"{part}.json").read_text())
    cfg = {k: v for k, v in cfg.items() if not k.startswith("_") and k not in ("architectures", "model_type")}
    return {**cfg, **(SMALL.get(part, {}) if scale == "small" else {})}


def build_sd_folder(folder: Path, scale: str, device: torch.device, dtype: torch.dtype, seed: int = 0) -> Path:
    """SD 1.5's components with random weights, saved as a StableDiffusionPipeline folder."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    tokenizer = CLIPTokenizer(vocab=str(TINY_CLIP / "vocab.json"), merges=str(TINY_CLIP / "merges.txt"), model_max_length=77)
    torch.manual_seed(seed)
    with torch.device(device):  # random init on the GPU: seconds instead of a minute of CPU
        unet = UNet2DConditionModel.from_config(sd15_config("unet", scale))
        vae = AutoencoderKL.from_config(sd15_config("vae", scale))
        text_cfg = sd15_config("text_encoder", scale)
        text_cfg.update(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                        pad_token_id=tokenizer.pad_token_id)
        text_encoder = CLIPTextModel(CLIPTextConfig(**text_cfg))
    scheduler = DDIMScheduler.from_config(json.loads((CONFIGS / "sd15" / "scheduler.json").read_text()))
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder.to(dtype), tokenizer=tokenizer, unet=unet.to(dtype),
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.save_pretrained(folder)
    return folder


def guide_image(size: int, seed: int = 0) -> np.ndarray:
    """A smooth random colour field with a few hard-edged strokes (what a user paints)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = np.stack([np.sin(6 * xx + c) * np.cos(4 * yy - c) for c in rng.uniform(0, 3, 3)], -1) * 0.5 + 0.5
    for _ in range(6):
        x0, y0 = rng.integers(0, size - size // 4, 2)
        img[y0 : y0 + size // 6, x0 : x0 + size // 4] = rng.uniform(0, 1, 3)
    return (img * 255).astype(np.uint8)


def count_calls(unet: torch.nn.Module, fn) -> dict[str, int]:
    counter = CallCounter(unet)
    try:
        fn()
        sync(next(unet.parameters()).device)
        return counter.take()
    finally:
        counter.remove()


def unet_flops(unet: torch.nn.Module, batch: int, latent: tuple[int, int, int], ctx: tuple[int, int], device, dtype) -> int:
    """FLOPs of one UNet call (FlopCounterMode: matmuls, convolutions, attention; 2 FLOPs per MAC)."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(batch, *latent, device=device, dtype=dtype)
    t = torch.full((batch,), 500.0, device=device)
    c = torch.zeros(batch, *ctx, device=device, dtype=dtype)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        unet(x, t, encoder_hidden_states=c)
    return int(counter.get_total_flops())


def full_sd15_unet_flops() -> int:
    """One SD 1.5 UNet call at batch 2, 64x64 latents (512 px), counted on the meta device (no memory, no time)."""
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(sd15_config("unet", "full"))
    return unet_flops(unet, 2, (4, 64, 64), (77, 768), "meta", torch.float32)


# ----------------------------------------------------------------------------- the run
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", default="float16", choices=["float16", "bfloat16", "float32"])
    p.add_argument("--scale", default="full", choices=["full", "small"])
    p.add_argument("--repeats", type=int, default=None, help="timed repeats per figure (default: 5 on cuda, 2 on cpu)")
    p.add_argument("--no-channels-last", action="store_true")
    p.add_argument("--compile", action="store_true", help="torch.compile the UNet (compile time reported apart)")
    p.add_argument("--cuda-graphs", action="store_true", help="compile with mode reduce-overhead (CUDA graphs)")
    p.add_argument("--fuse-qkv", action="store_true", help="fused attention projections (diffusers' fuse_qkv_projections)")
    p.add_argument("--inductor-recipe", action="store_true",
                   help="compile with the inductor flags of diffusers' acceleration tutorial (editing.fastpath.DIFFUSERS_RECIPE)")
    p.add_argument("--compile-vae", action="store_true", help="torch.compile the VAE's encode and decode too")
    p.add_argument("--graph-capture", action="store_true", help="the UNet replayed from CUDA graphs captured without compiling")
    p.add_argument("--ablation", action="store_true", help="time each fast-path toggle instead of the main figures")
    p.add_argument("--ablation-variants", default="",
                   help="comma-separated: classic,sdpa,cl,compile,fused,recipe,graphs,capture,fused-capture,recipe-graphs,extras,inversion,imagic "
                        "(default: all)")
    p.add_argument("--skip", default="", help="comma-separated sections to skip: sdedit,inversion,sweep,latency,previews,imagic,flops")
    p.add_argument("--inversion-steps-per-call", type=int, default=0,
                   help="InversionConfig.steps_per_call for our inversion (0 = auto, editing.inversion.AUTO_STEPS_PER_CALL)")
    p.add_argument("--imagic-paper-steps", type=int, default=20, help="Adam steps timed for the paper preset (half per stage)")
    p.add_argument("--imagic-fast-fraction", type=float, default=1.0,
                   help="run this fraction of the fast preset's Adam steps and extrapolate (CPU smoke runs); 1 = the preset")
    p.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak for the utilisation figure (default: H100 SXM 989)")
    p.add_argument("--folder", default=None, help="reuse/keep the generated SD folder here")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda but torch sees no CUDA GPU (on a CPU run: --device cpu --dtype float32 --scale small)")
    repeats = args.repeats or (5 if device.type == "cuda" else 2)
    skip = set(filter(None, args.skip.split(",")))
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    env = environment(device)
    env.update(scale=args.scale, dtype=args.dtype, repeats=repeats, tf32=device.type == "cuda")  # float32 rows use TF32 on CUDA
    print(f"# bench_gpu: {env['device_name']} {args.dtype} scale={args.scale} repeats={repeats} load {env['loadavg_start']}",
          flush=True)

    tmp = None
    if args.folder:
        folder = Path(args.folder)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="sd15-random-")
        folder = Path(tmp.name)
    if not (folder / "model_index.json").is_file():
        t_build, _ = timed(lambda: build_sd_folder(folder, args.scale, device, dtype), "cpu")
        print(f"built random SD 1.5 ({args.scale}) in {t_build:.1f} s: {folder}", flush=True)

    from editing.models import load_model

    bundle = load_model(folder, device=device, dtype=dtype)
    results: dict = {"model": {"unet_gib": module_gib(bundle.unet), "vae_gib": module_gib(bundle.vae),
                               "text_encoder_gib": module_gib(bundle.text_encoder), "resolution": bundle.resolution,
                               "latent_shape": list(bundle.latent_shape)}}
    prefix = f"ablation-{args.scale}-" if args.ablation else f"{args.scale}-"
    path = None

    def save() -> None:  # after every figure: a run stopped at a device call's time limit keeps what it measured
        nonlocal path
        path = write_results(prefix, env, results, path)

    _SAVE[0] = save
    if args.ablation:
        only = args.ablation_variants.split(",") if args.ablation_variants else None
        results["ablation"] = {"variants": {}}
        ablation(bundle, device, dtype, repeats, only, out=results["ablation"])
    else:
        run_main(args, bundle, folder, device, dtype, repeats, skip, out=results)
    save()
    print(f"\nwrote {path}")
    if tmp is not None:
        tmp.cleanup()
    return 0


_SAVE: list = [None]  # main's saver: results so far, to their file


def checkpoint() -> None:
    """Save the results so far (a no-op when the functions here are used without main)."""
    if _SAVE[0] is not None:
        _SAVE[0]()


def run_main(args, bundle, folder: Path, device, dtype, repeats: int, skip: set[str], out: dict | None = None) -> dict:
    from diffusers import DDIMScheduler, LEditsPPPipelineStableDiffusion, StableDiffusionImg2ImgPipeline
    from PIL import Image

    from editing.backend import EngineBackend
    from editing.fastpath import accelerate
    from editing.interface import EditConfig, Guide, InversionConfig, SDEditConfig
    from editing.sweep import sdedit_sweep

    res = bundle.resolution
    guide = guide_image(res)
    pil = Image.fromarray(guide)
    from editing.fastpath import DIFFUSERS_RECIPE

    t_acc, fast = timed(lambda: accelerate(bundle, channels_last=not args.no_channels_last, compile=args.compile,
                                           cuda_graphs=args.cuda_graphs, fuse_qkv=args.fuse_qkv, compile_vae=args.compile_vae,
                                           inductor_options=DIFFUSERS_RECIPE if args.inductor_recipe else None,
                                           graph_capture=args.graph_capture), device)  # fmt: skip
    out = {} if out is None else out  # filled in place, so that checkpoint() saves the figures so far
    out.update({"fastpath": fast.fastpath, "accelerate_s": t_acc, "rows": []})

    LongTimestepDDIM = long_timestep_ddim()  # noqa: N806
    peer_vae = copy.deepcopy(bundle.vae).to(dtype)  # diffusers feeds its VAE model-dtype tensors
    scheduler = DDIMScheduler.from_pretrained(folder / "scheduler")
    parts = dict(vae=peer_vae, text_encoder=bundle.text_encoder, tokenizer=bundle.tokenizer, unet=bundle.unet,
                 safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    img2img = StableDiffusionImg2ImgPipeline(scheduler=scheduler, **parts)
    ledits = LEditsPPPipelineStableDiffusion(scheduler=LongTimestepDDIM.from_config(scheduler.config), **parts)
    for pipe in (img2img, ledits):
        pipe.set_progress_bar_config(disable=True)

    def gen():
        return torch.Generator(device=device).manual_seed(0)

    rows = out["rows"]

    def row(name, ours_stat, peer_stat, calls_ours, calls_peer, goal=None, ratio_goal=None, note="", mem_ours=None, mem_peer=None):
        o = ours_stat.median
        pr = peer_stat.median if peer_stat is not None else None
        ratio = o / pr if pr else None
        met = None
        if ratio_goal is not None and ratio is not None:
            met = ratio <= ratio_goal
        elif goal is not None:
            met = o <= goal
        rows.append({"name": name, "ours": ours_stat.as_dict(), "peer": peer_stat.as_dict() if peer_stat else None,
                     "ratio": ratio, "calls_ours": calls_ours, "calls_peer": calls_peer, "goal_s": goal,
                     "goal_ratio": ratio_goal, "met": met, "note": note, "mem_ours": mem_ours, "mem_peer": mem_peer})
        print(f"  {name}: ours {ms(o):.1f} ms" + (f", peer {ms(pr):.1f} ms, ratio {ratio:.2f}" if pr else "")
              + (f"  [{note}]" if note else ""), flush=True)
        checkpoint()

    # --- SDEdit vs StableDiffusionImg2ImgPipeline ---------------------------------------------------
    if "sdedit" not in skip:
        for t0 in (0.5, 0.8):
            cfg = SDEditConfig(t0=t0, steps=50, sampler="ddim", guidance_scale=7.5, seed=0)

            def ours(cfg=cfg, model=fast):
                return final(sdedit(model, guide, cfg, prompt=PROMPT))

            def peer(t0=t0):
                return img2img(prompt=PROMPT, image=pil, strength=t0, num_inference_steps=50, guidance_scale=7.5,
                               eta=0.0, generator=gen(), output_type="np").images

            c_ours = count_calls(bundle.unet, lambda cfg=cfg: ours(cfg, bundle))
            c_peer = count_calls(bundle.unet, peer)
            st = interleaved({"ours": ours, "peer": peer}, device, repeats)
            row(f"SDEdit t0={t0} vs img2img strength={t0} ({res}px, 50-step DDIM, CFG 7.5)", st["ours"], st["peer"],
                c_ours, c_peer, ratio_goal=0.5, mem_ours=peak_memory(ours, device), mem_peer=peak_memory(peer, device))

    # --- edit-friendly inversion + edit vs LEdits++ ---------------------------------------------------
    if "inversion" not in skip:
        per_call = args.inversion_steps_per_call
        k = steps_per_call(InversionConfig(steps_per_call=per_call))  # what 0 (auto) resolves to

        def ours_inv(model=fast):
            # the maps of the 64 steps the edit uses, as the command line's one-shot edit and LEdits++ invert
            inv = final(invert(model, guide, SOURCE, InversionConfig(steps=100, steps_per_call=per_call, first_step=36)))
            return final(edit(model, inv, TARGET, EditConfig(skip=36, guidance_scale=15.0)))

        def peer_inv():
            with kept_attention(bundle.unet):  # LEdits++ switches the UNet to the classic AttnProcessor
                ledits.invert(image=pil, source_prompt=SOURCE, source_guidance_scale=3.5, num_inversion_steps=64,
                              skip=36 / 64, generator=gen())
                return ledits(editing_prompt=[TARGET], edit_guidance_scale=15.0, output_type="np", generator=gen()).images

        c_ours = count_calls(bundle.unet, lambda: ours_inv(bundle))
        c_peer = count_calls(bundle.unet, peer_inv)
        st = interleaved({"ours": ours_inv, "peer": peer_inv}, device, repeats)
        row(f"inversion (100 steps) + edit (T_skip 36, CFG 15) vs LEdits++ invert + edit ({res}px)", st["ours"], st["peer"],
            c_ours, c_peer, goal=1.0, mem_ours=peak_memory(ours_inv, device), mem_peer=peak_memory(peer_inv, device),
            note="LEdits++ inverts the 64 steps it edits (int(64 * (1 + 36/64)) = 100-step grid); it runs the classic "
                 f"attention processor (its invert sets it); ours: the same 64 maps (first_step 36), {k} steps per UNet call")

        # the inversion alone: its steps batched into few UNet calls (eq. 5's calls are independent) vs one call each

        def inv_with(n_per_call, model=fast):
            return final(invert(model, guide, SOURCE, InversionConfig(steps=100, steps_per_call=n_per_call)))

        c_b = count_calls(bundle.unet, lambda: inv_with(k, bundle))
        c_s = count_calls(bundle.unet, lambda: inv_with(1, bundle))
        st = interleaved({"batched": lambda: inv_with(k), "sequential": lambda: inv_with(1)}, device, repeats)
        row(f"inversion alone (100 steps, source CFG 3.5): {k} steps per UNet call vs 1 ({res}px)", st["batched"],
            st["sequential"], c_b, c_s, mem_ours=peak_memory(lambda: inv_with(k), device),
            mem_peer=peak_memory(lambda: inv_with(1), device), note="peer column = our own inversion, one step per call")

    # --- six-value t0 sweep: one batch vs six runs ----------------------------------------------------
    if "sweep" not in skip:
        cfgs = [SDEditConfig(t0=t, steps=50, sampler="ddim", guidance_scale=7.5, seed=i) for i, t in enumerate(SWEEP_T0S)]

        def batched(model=fast):
            return final(sdedit_sweep(model, guide, cfgs, prompt=PROMPT))

        def sequential(model=fast):
            return [final(sdedit(model, guide, c, prompt=PROMPT)) for c in cfgs]

        c_b = count_calls(bundle.unet, lambda: batched(bundle))
        c_s = count_calls(bundle.unet, lambda: sequential(bundle))
        st = interleaved({"batched": batched, "sequential": sequential}, device, repeats)
        row(f"six-value t0 sweep {SWEEP_T0S}: sdedit_sweep vs six editing.sdedit runs", st["batched"], st["sequential"],
            c_b, c_s, ratio_goal=0.5, note="peer column = our own six sequential runs")

    # --- request -> first streamed frame -------------------------------------------------------------
    if "latency" not in skip:
        backend = EngineBackend(fast)
        lat = {}
        for k in (1, 5):
            cfg = SDEditConfig(t0=0.5, steps=50, sampler="ddim", guidance_scale=7.5, preview_every=k)

            def first(cfg=cfg):
                frames = backend.sdedit(Guide(guide), cfg, prompt=PROMPT)
                frame = next(frames)
                frames.close()
                return frame

            lat[k] = interleaved({"first": first}, device, max(repeats, 5))["first"]
        # the studio asks for a frame every step (ui/defaults.py EVERY_STEP); 5 is the configs' default, for scripts
        row("request -> first streamed frame (EngineBackend.sdedit, preview_every=1, as the studio)", lat[1], None, None, None,
            goal=0.1, note=f"with the configs' default preview_every=5 (scripts): {ms(lat[5].median):.1f} ms")

    # --- previews' share of an edit ----------------------------------------------------------------
    if "previews" not in skip:
        cfgs = {k: SDEditConfig(t0=0.8, steps=50, sampler="ddim", guidance_scale=7.5, preview_every=k) for k in (1, 5, 1000)}
        st = interleaved({k: (lambda c=c: final(sdedit(fast, guide, c, prompt=PROMPT))) for k, c in cfgs.items()},
                         device, repeats)
        none = st[1000].median
        share = {k: max(0.0, (st[k].median - none) / st[k].median) for k in (1, 5)}
        out["previews"] = {"s": {str(k): v.as_dict() for k, v in st.items()}, "share_every_step": share[1], "share_default": share[5]}
        row("SDEdit t0=0.8 with a preview every step (vs none)", st[1], st[1000], None, None,
            note=f"previews' share: {100 * share[1]:.1f}% at every step, {100 * share[5]:.1f}% at every 5th (goal <= 5%)")

    # --- UNet FLOP utilisation -------------------------------------------------------------------------
    if "flops" not in skip:
        latent = tuple(bundle.latent_shape)
        ctx = tuple(bundle.encode_prompt([""]).shape[1:])
        flops = unet_flops(bundle.unet, 2, latent, ctx, device, dtype)
        x = torch.randn(2, *latent, device=device)
        t = torch.full((2,), 500.0, device=device)
        c = bundle.encode_prompt([PROMPT, ""])
        with torch.no_grad():
            st = interleaved({"fast": lambda: fast.eps(x, t, c), "plain": lambda: bundle.eps(x, t, c)}, device, max(repeats, 10))
        peak = args.peak_tflops or (H100_BF16_DENSE_TFLOPS if device.type == "cuda" else None)
        achieved = flops / st["fast"].median / 1e12
        out["flops"] = {"unet_flops_batch2": flops, "tflops_achieved": achieved, "peak_tflops": peak,
                        "utilisation": achieved / peak if peak else None, "guided_call": st["fast"].as_dict(),
                        "guided_call_plain": st["plain"].as_dict(), "sd15_full_unet_flops_batch2": full_sd15_unet_flops()}
        row("one guided UNet call (batch 2): fast path vs plain bundle", st["fast"], st["plain"], None, None,
            note=f"{flops / 1e9:.1f} GFLOP/call, {achieved:.2f} TFLOP/s" + (f" = {100 * achieved / peak:.1f}% of {peak:.0f}" if peak else ""))

    # --- Imagic ----------------------------------------------------------------------------------------
    if "imagic" not in skip:
        figs = imagic_figures(args, bundle, guide, device, repeats)
        fast_stat, figs["fast_stat"] = figs["fast_stat"], figs["fast_stat"].as_dict()
        out["imagic"] = figs
        mem = figs["fast_memory"]
        timed_note = "" if args.imagic_fast_fraction == 1.0 else f"EXTRAPOLATED from {args.imagic_fast_fraction:g} of its Adam steps; "
        mem_note = "" if mem is None else (f"peak GiB as a studio would hold it (this process: {mem['peak_gib']:.2f}); "
                                           f"the goal's 24 GB is 22.35 GiB; ")  # fmt: skip
        row("Imagic fast preset end to end (250 + 400 LoRA Adam steps + 50 DDIM steps)", fast_stat, None, None, None, goal=30.0,
            mem_ours=None if mem is None else {**mem, "peak_gib": mem["studio_peak_gib"]},
            note=timed_note + mem_note + f"paper preset extrapolated: {figs['paper_extrapolated_s']:.0f} s "
                 f"(from {args.imagic_paper_steps} and {2 * args.imagic_paper_steps} timed Adam steps)")

    print("\n" + summary_table(out["rows"], on_gpu=device.type == "cuda"))
    return out


def imagic_stages(model, guide, cfg, device, states: list | None = None) -> dict[str, float]:
    """Seconds per Imagic stage, from the end of the last stage to the end of this one (the device
    drained at each stage's last frame only: syncing at every Adam step would stop the host from
    queueing the next step while the GPU runs this one, which the studio does not do). The run is
    `editing.imagic.imagic`'s; `states` receives its optimised ImagicState (all its losses)."""
    from editing.imagic import _imagic_frames, optimize_imagic

    def kept(frames):
        for frame in frames:
            if frame.done and states is not None:
                states.append(frame.result)
            yield frame

    times: dict[str, float] = {}
    sync(device)
    last = time.perf_counter()
    for frame in _imagic_frames(model, kept(optimize_imagic(model, guide, TARGET, cfg, cache=None)), cfg):
        if frame.done or frame.step == frame.total:
            sync(device)
            now = time.perf_counter()
            times[frame.stage] = times.get(frame.stage, 0.0) + now - last
            last = now
    return times


def step_times(short: dict[str, float], longer: dict[str, float], n1: int, n2: int) -> tuple[float, float, float]:
    """(s per embedding step, s per fine-tuning step, the two stages' set-up s) from `imagic_stages`
    of n1 + n2 and of 2 n1 + 2 n2 Adam steps: each stage's set-up (its copy, adapter and optimiser)
    is in both runs, so the difference is steps alone, and the set-up is what the short run has over them."""
    per = [(longer.get(k, 0.0) - short.get(k, 0.0)) / n for k, n in (("optimize", n1), ("finetune", n2))]
    setup = sum(max(0.0, short.get(k, 0.0) - n * p) for k, n, p in (("optimize", n1, per[0]), ("finetune", n2, per[1])))
    return per[0], per[1], setup


def loss_drop(state, embedding_steps: int) -> dict[str, list[float]]:
    """Each stage's mean loss over its first and its last tenth of steps: an optimisation whose loss
    does not fall is broken, however fast (the twentieth session found stage 2 inert under CUDA
    autocast, which no timing showed)."""
    out = {}
    for name, losses in (("embedding", state.losses[:embedding_steps]), ("finetune", state.losses[embedding_steps:])):
        k = max(1, len(losses) // 10)
        if losses:
            out[name] = [float(np.mean(losses[:k])), float(np.mean(losses[-k:]))]
    return out


def studio_memory(mem: dict | None, model) -> dict | None:
    """`peak_memory` plus the peak a studio would see: this run's working memory over one copy of the
    model. This process also holds the plain bundle, the main figures' fast-path copy and the peers'
    VAE (about 4 GiB of Stable Diffusion on the H100 run), which a studio does not."""
    if mem is None:
        return None
    own = module_gib(*(m for m in (model.unet, getattr(model, "vae", None), getattr(model, "text_encoder", None)) if m is not None))
    return {**mem, "model_gib": own, "studio_peak_gib": mem["working_gib"] + own}


def imagic_figures(args, bundle, guide, device, repeats: int) -> dict:
    from benchmarks.common import Stat
    from editing.fastpath import accelerate
    from editing.interface import ImagicConfig

    model = accelerate(bundle, channels_last=not args.no_channels_last)  # Imagic copies the UNet: no compile
    family = bundle.family

    def staged(cfg) -> dict[str, float]:
        return imagic_stages(model, guide, cfg, device)

    preset = ImagicConfig.from_preset("fast", family)
    f = args.imagic_fast_fraction
    fast_cfg = dataclasses.replace(preset, embedding_steps=max(1, round(f * preset.embedding_steps)),
                                   finetune_steps=max(1, round(f * preset.finetune_steps)))
    staged(dataclasses.replace(fast_cfg, embedding_steps=2, finetune_steps=2, steps=2))  # warm-up
    fast_stat, fast_stages = Stat(), []
    states: list = []
    for _ in range(max(1, repeats // 5)):
        t, stages = timed(lambda: imagic_stages(model, guide, fast_cfg, device, states), device)
        if f != 1.0:  # extrapolate the Adam stages to the preset's step counts
            t = (stages.get("optimize", 0.0) * preset.embedding_steps / fast_cfg.embedding_steps
                 + stages.get("finetune", 0.0) * preset.finetune_steps / fast_cfg.finetune_steps
                 + stages.get("denoise", 0.0) + stages.get("done", 0.0))
        fast_stat.times.append(t)
        fast_stages.append(stages)
    drop = loss_drop(states[-1], fast_cfg.embedding_steps)
    print("  imagic fast preset, mean loss over the first -> last tenth of each stage: "
          + ", ".join(f"{k} {a:.4f} -> {b:.4f}" for k, (a, b) in drop.items()), flush=True)  # fmt: skip
    mem = studio_memory(peak_memory(lambda: staged(dataclasses.replace(fast_cfg, embedding_steps=5, finetune_steps=5, steps=5)),
                                    device), model)  # fmt: skip

    n = max(2, args.imagic_paper_steps)
    paper = ImagicConfig.from_preset("paper", family)
    probe = dataclasses.replace(paper, embedding_steps=n // 2, finetune_steps=n - n // 2, optimize_preview_every=10**5)
    staged(dataclasses.replace(probe, embedding_steps=1, finetune_steps=1, steps=1))  # warm-up (fp32 copy, Adam state)
    stages = staged(probe)
    longer = staged(dataclasses.replace(probe, embedding_steps=2 * probe.embedding_steps, finetune_steps=2 * probe.finetune_steps))
    per_opt, per_ft, setup = step_times(stages, longer, probe.embedding_steps, probe.finetune_steps)
    extrapolated = (paper.embedding_steps * per_opt + paper.finetune_steps * per_ft + setup
                    + stages.get("denoise", 0.0) + stages.get("done", 0.0))
    paper_mem = studio_memory(peak_memory(lambda: staged(dataclasses.replace(probe, embedding_steps=2, finetune_steps=2, steps=2)),
                                          device), model)  # fmt: skip
    return {"fast_config": dataclasses.asdict(fast_cfg), "fast_fraction_timed": f, "fast_stat": fast_stat, "fast_stages_s": fast_stages,
            "fast_loss_first_last_tenth": drop, "fast_memory": mem, "paper_config": dataclasses.asdict(paper), "paper_probe_steps": n,
            "paper_probe_stages_s": stages, "paper_s_per_embedding_step": per_opt, "paper_s_per_finetune_step": per_ft,
            "paper_extrapolated_s": extrapolated, "paper_memory": paper_mem}


def ablation(bundle, device, dtype, repeats: int, only: list[str] | None = None, out: dict | None = None) -> dict:
    """Each fast-path toggle timed on one guided UNet call (batch 2) and on SDEdit t0=0.5 end to end."""
    from diffusers.models.attention_processor import AttnProcessor

    from editing.fastpath import DIFFUSERS_RECIPE, accelerate
    from editing.interface import SDEditConfig

    guide = guide_image(bundle.resolution)
    cfg = SDEditConfig(t0=0.5, steps=50, sampler="ddim", guidance_scale=7.5)
    x = torch.randn(2, *bundle.latent_shape, device=device)
    t = torch.full((2,), 500.0, device=device)
    c = bundle.encode_prompt([PROMPT, ""])

    def classic():  # a copy of the UNet on the classic attention processor, made only if that variant runs
        copied = bundle.replace(unet=copy.deepcopy(bundle.unet))
        for m in copied.unet.modules():
            if hasattr(m, "set_processor"):
                m.set_processor(AttnProcessor())
        return copied

    # short key -> (label, bundle factory); --ablation-variants picks some (a GPU call lasts 10 minutes
    # at most, and each compiled variant compiles for a minute or more there)
    variants = {
        "classic": ("classic attention (AttnProcessor), NCHW", classic),
        "sdpa": ("SDPA (diffusers default), NCHW", lambda: bundle),
        "cl": ("SDPA + channels_last", lambda: accelerate(bundle)),
        "compile": ("SDPA + channels_last + compile (default mode)", lambda: accelerate(bundle, compile=True)),
        "fused": ("SDPA + channels_last + fused QKV", lambda: accelerate(bundle, fuse_qkv=True)),
        "recipe": ("SDPA + channels_last + fused QKV + compile (diffusers' inductor flags) + compiled VAE",
                   lambda: accelerate(bundle, fuse_qkv=True, inductor_options=DIFFUSERS_RECIPE, compile_vae=True)),
    }
    if device.type == "cuda":
        variants["graphs"] = ("SDPA + channels_last + compile + CUDA graphs (reduce-overhead)",
                              lambda: accelerate(bundle, cuda_graphs=True))
        variants["capture"] = ("SDPA + channels_last + CUDA graphs captured directly (no compile)",
                               lambda: accelerate(bundle, graph_capture=True))
        variants["fused-capture"] = ("SDPA + channels_last + fused QKV + CUDA graphs captured directly",
                                     lambda: accelerate(bundle, fuse_qkv=True, graph_capture=True))
        variants["recipe-graphs"] = ("SDPA + channels_last + fused QKV + compile (diffusers' flags) + CUDA graphs + compiled VAE",
                                     lambda: accelerate(bundle, fuse_qkv=True, inductor_options=DIFFUSERS_RECIPE, cuda_graphs=True,
                                                        compile_vae=True))  # fmt: skip
    if only is not None:
        unknown = set(only) - set(variants) - {"extras", "inversion", "imagic"}
        if unknown:
            raise SystemExit(f"unknown ablation variant(s) {sorted(unknown)}; "
                             f"allowed: {', '.join([*variants, 'extras', 'inversion', 'imagic'])}")
        variants = {k: v for k, v in variants.items() if k in only}
    out = {"variants": {}} if out is None else out  # filled in place (checkpoint() saves it as it goes)
    out.setdefault("variants", {})
    rows = []
    for name, make in variants.values():
        try:
            model = make()
            with torch.no_grad():
                t_first, _ = timed(lambda model=model: model.eps(x, t, c), device)  # includes compilation
                call = interleaved({"call": lambda model=model: model.eps(x, t, c)}, device, max(10, repeats), warmup=2)["call"]
            t_first_edit, _ = timed(lambda model=model: final(sdedit(model, guide, cfg, prompt=PROMPT)), device)
            edit = interleaved({"edit": lambda model=model: final(sdedit(model, guide, cfg, prompt=PROMPT))},
                               device, repeats)["edit"]
        except Exception as e:  # a variant that fails is recorded, and the others still run (one 10-minute call)
            out["variants"][name] = {"error": f"{type(e).__name__}: {e}"[:500]}
            rows.append([f"{name}: FAILED ({type(e).__name__})", None, None, None])
            print(f"  {name}: FAILED {type(e).__name__}: {e}", flush=True)
            checkpoint()
            torch._dynamo.reset()
            continue
        out["variants"][name] = {"first_call_s": t_first, "call": call.as_dict(), "first_edit_s": t_first_edit, "edit": edit.as_dict()}
        rows.append([f"{name}: guided call (A), SDEdit t0=0.5 (B), first call + first edit (C)", ms(call.median), ms(edit.median), t_first + t_first_edit])
        print(f"  {name}: call {ms(call.median):.2f} ms, SDEdit {ms(edit.median):.1f} ms, first call+edit {t_first + t_first_edit:.1f} s",
              flush=True)
        del model
        checkpoint()
        torch._dynamo.reset()  # the next variant compiles afresh, not against this one's graphs

    if only is None or "extras" in only:
        # CFG pair as one batch-2 call vs two batch-1 calls; half precision vs float32; cheap previews vs VAE
        x1, c_u, c_c = x[:1], c[1:], c[:1]
        with torch.no_grad():
            st = interleaved({"pair": lambda: bundle.eps(x, t, c),
                              "two": lambda: (bundle.eps(x1, t[:1], c_c), bundle.eps(x1, t[:1], c_u))}, device, max(10, repeats))
            out["cfg_pair"] = {k: v.as_dict() for k, v in st.items()}
            rows.append(["CFG pair: one batch-2 call (A) vs two batch-1 calls (B)", ms(st["pair"].median), ms(st["two"].median), None])
            dtypes = {"float32": bundle.replace(unet=copy.deepcopy(bundle.unet).float())}
            if device.type == "cuda":
                other = torch.bfloat16 if dtype == torch.float16 else torch.float16
                dtypes[str(other).removeprefix("torch.")] = bundle.replace(unet=copy.deepcopy(bundle.unet).to(other))
            dtypes[str(dtype).removeprefix("torch.")] = bundle
            st = interleaved({k: (lambda m=m: m.eps(x, t, c)) for k, m in dtypes.items()}, device, max(10, repeats))
            out["dtype"] = {k: v.as_dict() for k, v in st.items()}
            tf32 = " (TF32 matmuls and convolutions)" if device.type == "cuda" and torch.backends.cuda.matmul.allow_tf32 else ""
            for k, v in st.items():
                rows.append([f"guided UNet call (batch 2) in {k}{tf32 if k == 'float32' else ''} (A)", ms(v.median), None, None])
            lat = torch.randn(1, *bundle.latent_shape, device=device)
            st = interleaved({"preview": lambda: bundle.preview(lat), "vae": lambda: bundle.decode(lat)}, device, max(10, repeats))
            out["preview_vs_vae"] = {k: v.as_dict() for k, v in st.items()}
            rows.append(["frame preview: linear latent->RGB (A) vs full VAE decode (B)", ms(st["preview"].median), ms(st["vae"].median), None])
    checkpoint()
    if only is None or "inversion" in only:
        rows += inversion_batching(bundle, device, repeats, out)
        checkpoint()
    if only is None or "imagic" in only:
        rows += imagic_batching(bundle, device, out)
        checkpoint()
    table = markdown_table(["variant", "A ms", "B ms", "C s"], rows)
    print("\n" + table)
    out["table"] = table
    return out


INVERSION_STEPS_PER_CALL = (1, 5, 10, 20, 50)
UNET_ROWS = (2, 4, 10, 20, 40, 100)


def inversion_batching(bundle, device, repeats: int, out: dict) -> list[list]:
    """What InversionConfig.steps_per_call should be: a UNet call's time against its rows (the CFG
    pair of 1 to 50 steps), and a 100-step inversion at each steps_per_call (fast path, no compile)."""
    from editing.fastpath import accelerate
    from editing.interface import InversionConfig

    model, rows = accelerate(bundle), []
    guide = guide_image(bundle.resolution)
    c2 = bundle.encode_prompt([PROMPT, ""])
    per_rows = {}
    with torch.no_grad():
        for n in UNET_ROWS:
            xn, tn = torch.randn(n, *bundle.latent_shape, device=device), torch.linspace(999.0, 0.0, n, device=device)
            cn = c2.repeat(n // 2, 1, 1)
            per_rows[n] = interleaved({"call": lambda xn=xn, tn=tn, cn=cn: model.eps(xn, tn, cn)}, device, max(5, repeats))["call"]
            rows.append([f"UNet call with {n} rows (A), per row (B)", ms(per_rows[n].median), ms(per_rows[n].median / n), None])
    out["unet_rows"] = {str(n): v.as_dict() for n, v in per_rows.items()}
    inv = {}
    for k in INVERSION_STEPS_PER_CALL:
        cfg = InversionConfig(steps=100, steps_per_call=k)
        inv[k] = interleaved({"inv": lambda cfg=cfg: final(invert(model, guide, SOURCE, cfg))}, device, repeats)["inv"]
        rows.append([f"100-step inversion, {k} steps per call (A)", ms(inv[k].median), None, None])
        print(f"  inversion, {k} steps per call: {ms(inv[k].median):.1f} ms", flush=True)
    out["inversion_steps_per_call"] = {str(k): v.as_dict() for k, v in inv.items()}
    return rows


IMAGIC_BATCHES = (1, 2, 4, 8)


def imagic_batching(bundle, device, out: dict, steps: int = 10) -> list[list]:
    """What the fast preset's batch size should be: an Adam step of each Imagic stage (the
    embedding, the LoRA and the full fine-tuning) at 1 to 8 (t, eps) samples, with its peak memory,
    and the fast preset's end to end with the same samples per stage in ceil(steps / b) steps
    (`python benchmarks/bench_imagic.py --batch-study` measures what fewer, larger steps do to the
    result on the emoji model)."""
    import math

    from editing.fastpath import accelerate
    from editing.interface import ImagicConfig

    model, guide = accelerate(bundle), guide_image(bundle.resolution)
    fast = ImagicConfig.from_preset("fast", bundle.family)
    quiet = dict(optimize_preview_every=10**5, steps=1)
    rows, res = [], {}
    one = dataclasses.replace(fast, embedding_steps=1, finetune_steps=1)
    imagic_stages(model, guide, dataclasses.replace(one, steps=2), device)  # warm-up
    rendered = imagic_stages(model, guide, one, device)
    denoise = rendered.get("denoise", 0.0) + rendered.get("done", 0.0)  # stage 3 and the state's hand-over
    for mode in ("lora", "full"):
        for b in IMAGIC_BATCHES:
            cfg = dataclasses.replace(fast, finetune_mode=mode, batch_size=b, embedding_steps=steps, finetune_steps=steps, **quiet)
            key = f"{mode}-b{b}"
            try:
                imagic_stages(model, guide, dataclasses.replace(cfg, embedding_steps=2, finetune_steps=2), device)  # warm-up
                mem = peak_memory(lambda cfg=cfg: imagic_stages(model, guide, cfg, device), device)
                stages = imagic_stages(model, guide, cfg, device)
                longer = imagic_stages(model, guide, dataclasses.replace(cfg, embedding_steps=2 * steps, finetune_steps=2 * steps), device)
            except Exception as e:  # out of memory at a large batch: recorded, and the rest still run
                res[key] = {"error": f"{type(e).__name__}: {e}"[:300]}
                rows.append([f"Imagic {mode}, batch {b}: FAILED ({type(e).__name__})", None, None, None])
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                continue
            per1, per2, setup = step_times(stages, longer, steps, steps)
            n1, n2 = math.ceil(fast.embedding_steps * fast.batch_size / b), math.ceil(fast.finetune_steps * fast.batch_size / b)
            total = n1 * per1 + n2 * per2 + setup + denoise  # the stages' set-ups (copy, adapter, optimiser) once
            mem = studio_memory(mem, model)
            res[key] = {"s_per_embedding_step": per1, "s_per_finetune_step": per2, "setup_s": setup, "memory": mem,
                        "preset_steps": [n1, n2], "preset_estimate_s": total}
            peak = f", peak {mem['studio_peak_gib']:.1f} GiB as a studio holds it" if mem else ""
            print(f"  imagic {mode} batch {b}: {ms(per1):.1f} ms / embedding step, {ms(per2):.1f} ms / fine-tuning step{peak}; "
                  f"the fast preset's samples in {n1} + {n2} steps: about {total:.1f} s", flush=True)
            rows.append([f"Imagic {mode}, batch {b}: ms per embedding step (A), per fine-tuning step (B); "
                         f"{n1} + {n2} steps end to end s (C){peak}", ms(per1), ms(per2), total])
    out["imagic_batching"] = {"fast_preset": dataclasses.asdict(fast), "denoise_s": denoise, "timed_steps": [steps, 2 * steps],
                              "runs": res}
    return rows


def summary_table(rows: list[dict], on_gpu: bool = True) -> str:
    body = []
    for r in rows:
        def calls(c):
            return f"{c['unet_calls']} ({c['unet_rows']} rows)" if c else ""

        goal = f"<= {r['goal_ratio']}x" if r.get("goal_ratio") is not None else (f"<= {r['goal_s']} s" if r.get("goal_s") else "")
        mem = ""
        if r.get("mem_ours"):
            mem = f"{r['mem_ours']['peak_gib']:.2f}"
            if r.get("mem_peer"):
                mem += f" / {r['mem_peer']['peak_gib']:.2f}"
        body.append([r["name"], ms(r["ours"]["median_s"]), ms(r["peer"]["median_s"]) if r["peer"] else None,
                     r["ratio"], calls(r["calls_ours"]), calls(r["calls_peer"]), mem, goal,
                     {True: "yes", False: "NO", None: ""}[r["met"]] if on_gpu or r["met"] is None else "n/a (H100 goal)",
                     r["note"]])
    return markdown_table(["figure", "ours ms", "peer ms", "ratio", "UNet calls ours", "UNet calls peer",
                           "peak GiB ours / peer", "goal", "met", "note"], body)


if __name__ == "__main__":
    sys.exit(main())
