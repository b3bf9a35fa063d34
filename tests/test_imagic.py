"""Imagic: the loaded model is never modified, the cache skips optimisation, eta = 0 reconstructs,
eta moves towards the target text, seeds are honoured. CPU, tiny random models (and the emoji
model when it is present)."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json

import numpy as np
import pytest
import torch

from editing import final
from editing.cache import LRUCache
from editing.interface import ImagicConfig

imagic_mod = pytest.importorskip("editing.imagic")
imagic, optimize_imagic, render_imagic = imagic_mod.imagic, imagic_mod.optimize_imagic, imagic_mod.render_imagic


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # The tiny models are far faster single-threaded on a shared 2-core machine (no spin contention).
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _image(h: int = 16, w: int = 16) -> np.ndarray:
    """A smooth gradient with a yellow square: easy to see, not constant."""
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = 30 + (180 * xx / max(w - 1, 1)).astype(np.uint8)
    img[..., 1] = 40
    img[..., 2] = 200 - (150 * yy / max(h - 1, 1)).astype(np.uint8)
    img[h // 3: 2 * h // 3, w // 3: 2 * w // 3] = (240, 220, 30)
    return img


def _rms(a: np.ndarray, b: np.ndarray) -> float:
    """RMS difference on [0, 1] pixels."""
    return float(np.sqrt(np.mean((a.astype(np.float64) / 255 - b.astype(np.float64) / 255) ** 2)))


def _bits(module: torch.nn.Module) -> str:
    """sha256 of every tensor's exact bytes (params and buffers), names and dtypes included."""
    h = hashlib.sha256()
    for k, v in sorted(module.state_dict().items()):
        h.update(f"{k}{v.dtype}{tuple(v.shape)}".encode())
        h.update(v.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


TINY = dict(embedding_steps=3, finetune_steps=3, steps=4, batch_size=2, optimize_preview_every=2, preview_every=2)


# ----------------------------------------------------------------------------- config
def test_presets_and_defaults():
    assert ImagicConfig() == ImagicConfig.from_preset("fast", "pixel-text")
    paper = ImagicConfig.from_preset("paper", "latent-sd")
    # Kawar et al. 2023, Stable Diffusion settings: 1000 embedding steps at 2e-3, 1500 full fine-tune steps at 5e-7.
    assert (paper.embedding_steps, paper.embedding_lr, paper.finetune_steps, paper.finetune_lr, paper.finetune_mode) == (
        1000, 2e-3, 1500, 5e-7, "full")
    assert (paper.eta, paper.guidance_scale, paper.steps, paper.sampler) == (0.7, 7.5, 50, "ddim")
    assert ImagicConfig.from_preset("fast", "latent-sd").finetune_mode == "lora"
    # The command line's resolution: untouched fields from the preset, changed ones kept; idempotent.
    cli = ImagicConfig(preset="paper", eta=0.9).for_family("latent-sd")
    assert cli == ImagicConfig.from_preset("paper", "latent-sd", eta=0.9)
    assert cli.for_family("latent-sd") == cli
    # Told which fields were given, a value equal to the class default is kept (guidance 3.0, not 7.5).
    given = ImagicConfig(preset="paper", guidance_scale=3.0).for_family("latent-sd", given={"preset", "guidance_scale"})
    assert given == ImagicConfig.from_preset("paper", "latent-sd", guidance_scale=3.0)
    with pytest.raises(ValueError, match=r"eta=1.6 is out of range; allowed: \[0.0, 1.5\]"):
        ImagicConfig(eta=1.6)
    with pytest.raises(ValueError, match="finetune_mode"):
        ImagicConfig(finetune_mode="dreambooth")
    with pytest.raises(ValueError, match="text-conditioned"):
        ImagicConfig.from_preset("fast", "pixel-ddpm")


def test_cache_key_covers_optimisation_fields_only(tiny_pixel_text):
    key = imagic_mod.state_key
    m, img, base = tiny_pixel_text, _image(), ImagicConfig()
    k = key(m, img, "a cat", base)
    # Re-render-only fields share the state...
    for change in (dict(eta=0.1), dict(seed=5), dict(guidance_scale=1.0), dict(steps=7), dict(sampler="ddpm"), dict(preset="paper")):
        assert key(m, img, "a cat", ImagicConfig(**change)) == k, change
    # ...every optimisation field, the text and the image make a new one.
    for change in (dict(embedding_steps=7), dict(embedding_lr=0.5), dict(finetune_steps=7), dict(finetune_lr=0.5),
                   dict(finetune_mode="lora"), dict(lora_rank=2), dict(batch_size=1), dict(optimization_seed=1),
                   dict(mixed_precision=False), dict(gradient_checkpointing=True)):
        assert key(m, img, "a cat", ImagicConfig(**change)) != k, change
    assert key(m, img, "a dog", base) != k
    assert key(m, img[::-1].copy(), "a cat", base) != k


def test_unconditional_models_are_refused(tiny_pixel_ddpm):
    with pytest.raises(ValueError, match="Imagic needs a text-conditioned model; .* is unconditional"):
        imagic(tiny_pixel_ddpm, _image(), "a cat", ImagicConfig(**TINY))


# ----------------------------------------------------------------------------- the loaded model is untouched
@pytest.mark.parametrize("mode", ["lora", "full"])
def test_loaded_weights_are_bit_identical_after_a_run(tiny_pixel_text, mode):
    m = tiny_pixel_text
    before, unet = _bits(m.unet), m.unet
    frames = list(imagic(m, _image(), "a yellow square", ImagicConfig(**TINY, finetune_mode=mode, finetune_lr=1e-2), cache=None))
    assert frames[-1].done and frames[-1].info["optimizer_steps"] == 6
    assert m.unet is unet and _bits(m.unet) == before
    assert not any(p.requires_grad for p in m.unet.parameters()) and not m.unet.training
    assert not getattr(m.unet, "_hf_peft_config_loaded", False)  # no adapter was injected into it
    # The state carries the fine-tuning, and rendering applies it: full, the tuned weights themselves;
    # LoRA, every attention projection of the rebuilt copy is W + B A (merged), with B A != 0.
    state = final(optimize_imagic(m, _image(), "a yellow square", ImagicConfig(**TINY, finetune_mode=mode, finetune_lr=1e-2), cache=None))
    tuned, base = imagic_mod.tuned_unet(m, state).state_dict(), m.unet.state_dict()
    if mode == "full":
        assert all(torch.equal(tuned[k], v) for k, v in state.weights.items())
        assert any(not torch.equal(tuned[k], base[k]) for k in base)
    else:
        lora_a = [k for k in state.weights if k.endswith(".lora_A.weight")]
        from diffusers.models.attention_processor import Attention

        n_attention = sum(isinstance(mod, Attention) for mod in m.unet.modules())  # self- and cross-attention
        assert n_attention > 0 and len(lora_a) == 4 * n_attention  # to_q, to_k, to_v, to_out.0 of each
        for k in lora_a:
            name = k[: -len(".lora_A.weight")]
            delta = state.weights[name + ".lora_B.weight"] @ state.weights[k]
            assert delta.abs().max() > 0
            torch.testing.assert_close(tuned[name + ".base_layer.weight"], base[name + ".weight"] + delta, atol=1e-6, rtol=1e-5)


def test_latent_sd_runs_and_leaves_weights_alone(tiny_latent_sd):
    m = tiny_latent_sd
    before = _bits(m.unet), _bits(m.vae), _bits(m.text_encoder)
    img = _image(20, 12)  # non-square: returned at the input's size
    out = final(imagic(m, img, "a cat", ImagicConfig(**TINY, finetune_lr=1e-2), cache=None))
    assert out.dtype == np.uint8 and out.shape == (20, 12, 3)
    assert (_bits(m.unet), _bits(m.vae), _bits(m.text_encoder)) == before


# ----------------------------------------------------------------------------- frames
def test_frames_stream_losses_previews_then_the_result(tiny_pixel_text):
    frames = list(imagic(tiny_pixel_text, _image(24, 20), "a yellow square", ImagicConfig(**TINY), cache=None))
    stages = [f.stage for f in frames]
    assert stages == ["optimize"] * 3 + ["finetune"] * 3 + ["denoise"] + ["done"]
    opt = frames[:6]
    assert [f.step for f in opt] == [1, 2, 3, 1, 2, 3] and {f.total for f in opt} == {3}
    # Reconstruction previews every optimize_preview_every (2) steps and at each stage's end, with the
    # loss (read back from the device there, not at every step); the state keeps every step's loss.
    assert [f.x0 is not None for f in opt] == [False, True, True, False, True, True]
    assert [f.loss is not None for f in opt] == [False, True, True, False, True, True]
    assert all(np.isfinite(f.loss) for f in opt if f.loss is not None)
    state = final(optimize_imagic(tiny_pixel_text, _image(24, 20), "a yellow square", ImagicConfig(**TINY), cache=None))
    assert len(state.losses) == 6 and [state.losses[i] for i in (1, 2, 4, 5)] == [f.loss for f in opt if f.loss is not None]
    assert opt[1].x0.dtype == np.uint8 and opt[1].x0.shape == (16, 16, 3)
    assert frames[6].step == 2 and frames[6].x0 is not None  # denoise preview every 2 of 4 steps
    done = frames[-1]
    assert done.result.shape == (24, 20, 3) and done.result.dtype == np.uint8
    assert done.info["cache_hit"] is False and done.info["optimizer_steps"] == 6 and len(done.info["state_key"]) == 64


def test_gradient_checkpointing_does_not_change_the_optimisation(tiny_pixel_text):
    cfg = ImagicConfig(**TINY, finetune_mode="full", finetune_lr=1e-2)
    a = final(optimize_imagic(tiny_pixel_text, _image(), "a yellow square", cfg, cache=None))
    b = final(optimize_imagic(tiny_pixel_text, _image(), "a yellow square",
                              ImagicConfig(**TINY, finetune_mode="full", finetune_lr=1e-2, gradient_checkpointing=True), cache=None))
    np.testing.assert_allclose(a.losses, b.losses, rtol=1e-4)
    assert a.optimizer_steps == b.optimizer_steps == 6


# ----------------------------------------------------------------------------- cache
@pytest.mark.parametrize("mode", ["lora", "full"])
def test_every_step_sees_the_weights_the_last_step_made_under_mixed_precision(tiny_pixel_text, monkeypatch, mode):
    """On CUDA the Adam stages run under bf16 autocast. Autocast keeps its low-precision copy of a
    float32 leaf that requires grad (LoRA or fine-tuned weights) until its context exits, so one
    context around all the steps made every forward use the first step's copies: the optimiser moved
    the weights and the model did not see them (LoRA learnt nothing; full fine-tuning moved only the
    norms). CPU bf16 autocast stands in for CUDA's: the losses must be those of autocast with no
    cache at all, which casts the current weights at every use."""
    def losses(cache: bool) -> tuple[float, ...]:
        monkeypatch.setattr(imagic_mod, "_autocast", lambda model, config: torch.autocast("cpu", dtype=torch.bfloat16, cache_enabled=cache))
        cfg = ImagicConfig(**{**TINY, "embedding_steps": 4, "finetune_steps": 6, "embedding_lr": 1e-2, "finetune_lr": 1e-2,
                              "finetune_mode": mode, "optimize_preview_every": 100})  # fmt: skip
        return final(optimize_imagic(tiny_pixel_text, _image(), "a yellow square", cfg, cache=None)).losses

    fresh, cached = losses(cache=False), losses(cache=True)
    assert len(set(fresh[4:])) == 6  # the fine-tuning moves the loss
    assert cached == fresh


def test_the_optimised_embedding_keeps_float32_under_autocast(tiny_dir):
    """Stage 1's embedding reaches a float16 network in float32 when autocast is on (CUDA's bf16;
    CPU's stands in here): cast to float16 first, its gradient came back through float16 with no
    loss scaling. Conditions that are not optimised, and any without autocast, take the network's dtype."""
    from editing.models import load_model

    m = load_model(tiny_dir / "latent-sd", device="cpu", dtype=torch.float16)
    x = torch.randn(1, *m.latent_shape)
    e = m.encode_prompt(["a cat"]).float().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert m._args(x, 500.0, e)[2].dtype == torch.float32
        assert m._args(x, 500.0, e.detach())[2].dtype == torch.float16
    assert m._args(x, 500.0, e)[2].dtype == torch.float16
    # (the whole forward is for tests/test_gpu.py: CPU autocast leaves group_norm to a float16 network's
    # dtype, where CUDA's runs it in float32)


def test_a_float16_model_without_autocast_optimises_a_float32_copy(tiny_dir, monkeypatch):
    """A float16 model where stages 1-2 get no autocast (a CPU, a GPU without bf16, or
    mixed_precision off) trains a float32 copy: float16 gradients would need loss scaling."""
    from editing.models import load_model

    m = load_model(tiny_dir / "latent-sd", device="cpu", dtype=torch.float16)
    seen = set()
    call = imagic_mod._Loss.__call__

    def spy(self, bundle, cond, i):
        seen.add(bundle.dtype)
        return call(self, bundle, cond, i)

    monkeypatch.setattr(imagic_mod._Loss, "__call__", spy)
    cfg = ImagicConfig.from_preset("fast", "latent-sd", embedding_steps=2, finetune_steps=2, steps=2)
    state = final(optimize_imagic(m, _image(m.resolution, m.resolution), "a cat", cfg, cache=None))
    assert seen == {torch.float32} and all(np.isfinite(state.losses))
    assert m.unet.dtype == torch.float16  # the loaded model itself is untouched


def test_lora_trains_every_attention_projection_after_the_fast_paths_fused_qkv(tiny_dir):
    """The fast path's fuse_qkv runs fused copies of q, k and v; Imagic works on a copy that uses the
    separate ones, so LoRA trains all its targets (with fused ones in use, 20 of 32 adapters got no
    gradient) and a render is the same on the fused and the plain model."""
    from editing.fastpath import accelerate
    from editing.models import load_model

    plain = load_model(tiny_dir / "latent-sd", device="cpu")
    fused = accelerate(plain, channels_last=False, fuse_qkv=True)
    cfg = ImagicConfig.from_preset("fast", "latent-sd", embedding_steps=1, finetune_steps=2, steps=3, finetune_lr=1e-2)
    state = final(optimize_imagic(fused, _image(plain.resolution, plain.resolution), "a cat", cfg, cache=None))
    adapters = [v for k, v in state.weights.items() if "lora_B" in k]
    assert len(adapters) >= 32 and all(v.abs().sum() > 0 for v in adapters)
    a, b = final(render_imagic(plain, state, cfg)), final(render_imagic(fused, state, cfg))
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_a_cache_hit_performs_no_optimizer_step(tiny_pixel_text, monkeypatch):
    calls = []
    step = torch.optim.Adam.step
    monkeypatch.setattr(torch.optim.Adam, "step", lambda self, *a, **k: (calls.append(1), step(self, *a, **k))[1])
    cache, img, cfg = LRUCache(2), _image(), ImagicConfig(**TINY)
    first = list(imagic(tiny_pixel_text, img, "a yellow square", cfg, cache=cache))
    assert len(calls) == 6 and first[-1].info["cache_hit"] is False
    # A new eta and a new seed re-render from the cached state: no Adam step at all, no optimisation frames.
    again = list(imagic(tiny_pixel_text, img, "a yellow square", ImagicConfig(**TINY, eta=0.2, seed=3), cache=cache))
    assert len(calls) == 6
    assert again[-1].info == {**again[-1].info, "cache_hit": True, "optimizer_steps": 0, "state_key": first[-1].info["state_key"]}
    assert {f.stage for f in again} == {"denoise", "done"}
    # The same settings from the cache give the first run's pixels exactly.
    same = final(imagic(tiny_pixel_text, img, "a yellow square", cfg, cache=cache))
    assert len(calls) == 6 and np.array_equal(same, first[-1].result)
    # A new optimisation setting (or text) optimises again.
    final(imagic(tiny_pixel_text, img, "a yellow square", ImagicConfig(**TINY, optimization_seed=1), cache=cache))
    assert len(calls) == 12


# ----------------------------------------------------------------------------- the method's properties
# One state trained long enough that the tiny random model (16 px, blocks 32/64, random weights)
# learns the image: full fine-tuning, 10 + 100 Adam steps of 8 timesteps each. Reconstruction from
# pure noise needs an accurate denoiser at every t, which a random network only approaches; the
# bounds below are what it reaches (measured, with margin); the emoji model's are far tighter.
TRAINED = ImagicConfig(embedding_steps=10, embedding_lr=1e-2, finetune_steps=100, finetune_lr=3e-3, finetune_mode="full",
                       batch_size=8, guidance_scale=1.0, steps=25, sampler="ddpm", optimize_preview_every=1000)


@pytest.fixture(scope="module")
def trained(tiny_pixel_text):
    return final(optimize_imagic(tiny_pixel_text, _image(), "a yellow square", TRAINED, cache=None))


def _render(model, state, **kw) -> np.ndarray:
    return final(render_imagic(model, state, ImagicConfig(**{**TRAINED.__dict__, **kw})))


def test_eta_zero_reconstructs_the_input(tiny_pixel_text, trained):
    m, img = tiny_pixel_text, _image()
    assert np.mean(trained.losses[-10:]) < 0.25 * np.mean(trained.losses[:10])  # the fine-tuning converged
    untouched = final(optimize_imagic(m, img, "a yellow square", ImagicConfig(**{**TRAINED.__dict__, "embedding_steps": 0,
                                                                                 "finetune_steps": 0}), cache=None))
    errors = {seed: _rms(_render(m, trained, eta=0.0, seed=seed), img) for seed in (0, 1)}
    before = _rms(_render(m, untouched, eta=0.0), img)
    print(f"eta=0 rms to the input: tuned {errors}, untuned {before:.3f}")
    # Measured: tuned 0.254 and 0.238 (seeds 0, 1; DDPM, 25 steps), the untuned model 0.480 (noise).
    assert max(errors.values()) < 0.32 and max(errors.values()) < 0.65 * before


def test_larger_eta_moves_towards_the_target_text(tiny_pixel_text, trained):
    # Proxy on a random model (no text alignment to measure): the distance to the sample generated from
    # e_tgt alone (eta = 1) with the same seed shrinks step by step as eta grows. (The distance to the input
    # is no proxy here: a random model's e_tgt moves the sample about orthogonally to the input, and its
    # change over eta, 0.0005 of 0.36, took either sign on different CPUs.)
    m = tiny_pixel_text
    etas = (0.0, 0.25, 0.5, 0.75, 1.0)
    outs = {eta: _render(m, trained, eta=eta, sampler="ddim") for eta in etas}
    to_target = [_rms(outs[eta], outs[1.0]) for eta in etas]
    print(f"rms to the eta=1 sample over eta {etas}: {to_target}")
    assert all(a > b for a, b in itertools.pairwise(to_target)) and to_target[-1] == 0.0


def test_same_seed_same_output_new_seed_different(tiny_pixel_text, trained):
    m = tiny_pixel_text
    for sampler in ("ddim", "ddpm"):
        a, b = _render(m, trained, eta=0.7, seed=0, sampler=sampler), _render(m, trained, eta=0.7, seed=0, sampler=sampler)
        c = _render(m, trained, eta=0.7, seed=1, sampler=sampler)
        assert np.array_equal(a, b)
        assert _rms(a, c) > 0.01, sampler
    # The optimisation is seeded too: the same config optimises to the same state.
    cfg = ImagicConfig(**TINY)
    s1 = final(optimize_imagic(m, _image(), "a yellow square", cfg, cache=None))
    s2 = final(optimize_imagic(m, _image(), "a yellow square", cfg, cache=None))
    assert s1.losses == s2.losses and all(torch.equal(s1.weights[k], s2.weights[k]) for k in s1.weights)


def test_render_refuses_a_state_of_another_model(tiny_pixel_text, tiny_latent_sd, trained):
    with pytest.raises(ValueError, match="this Imagic state was made with model"):
        render_imagic(tiny_latent_sd, trained, TRAINED)


# ----------------------------------------------------------------------------- command line
def test_cli_runs_imagic_and_records_the_resolved_config(tiny_dir, tmp_path):
    from PIL import Image

    from editing.cli import main

    Image.fromarray(_image()).save(tmp_path / "in.png")
    out = tmp_path / "out.png"
    code = main(["imagic", "--image", str(tmp_path / "in.png"), "--target", "a red square", "--model", str(tiny_dir / "latent-sd"),
                 "--device", "cpu", "--preset", "paper", "--embedding-steps", "2", "--finetune-steps", "2", "--steps", "3",
                 "--eta", "0.5", "--guidance-scale", "3.0", "--out", str(out), "--quiet"])
    assert code == 0 and np.asarray(Image.open(out)).shape == (16, 16, 3)
    recipe = json.loads(out.with_suffix(".json").read_text())
    assert recipe["method"] == "imagic"
    # The flags given win, --guidance-scale 3.0 too though it equals the class default (the paper
    # preset's is 7.5); the untouched fields come from the paper preset for this family.
    assert recipe["configs"]["imagic"]["values"] == dataclasses.asdict(
        ImagicConfig.from_preset("paper", "latent-sd", embedding_steps=2, finetune_steps=2, steps=3, eta=0.5, guidance_scale=3.0))
    assert main(["replay", str(out.with_suffix(".json")), "--quiet"]) == 0  # same pixels

    # Replay runs the configs as recorded. A recipe whose guidance equals the class default (3.0; the
    # paper preset's is 7.5), as a studio run with that slider value writes, keeps it.
    recipe["configs"]["imagic"]["values"]["guidance_scale"] = 3.0
    del recipe["output"]
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(recipe))
    assert main(["replay", str(edited), "--quiet"]) == 0
    replayed = json.loads((tmp_path / "edited-replay.json").read_text())
    assert replayed["configs"]["imagic"]["values"]["guidance_scale"] == 3.0


def test_cli_sweeps_eta_over_one_optimisation(tiny_dir, tmp_path):
    """`sweep imagic --param eta`: the paper's eta interpolation from the shell. The optimisation runs
    once (cached), each eta re-renders; the fast preset of the model's family fills what is not given."""
    from PIL import Image

    from editing.cli import main

    Image.fromarray(_image()).save(tmp_path / "in.png")
    misses, hits = imagic_mod.CACHE.misses, imagic_mod.CACHE.hits
    code = main(["sweep", "imagic", "--image", str(tmp_path / "in.png"), "--target", "a red square", "--model", str(tiny_dir / "latent-sd"),
                 "--device", "cpu", "--embedding-steps", "2", "--finetune-steps", "2", "--steps", "2", "--param", "eta",
                 "--values", "0,1", "--seeds", "0,1", "--out-dir", str(tmp_path / "sw"), "--quiet"])  # fmt: skip
    assert code == 0
    new_misses, new_hits = imagic_mod.CACHE.misses - misses, imagic_mod.CACHE.hits - hits
    assert new_misses <= 1 and new_misses + new_hits == 4  # four renders, at most one optimisation
    outs = {}
    for eta in (0.0, 1.0):
        recipe = json.loads((tmp_path / "sw" / f"imagic-eta{eta}-seed0.json").read_text())
        assert recipe["configs"]["imagic"]["values"] == dataclasses.asdict(
            ImagicConfig.from_preset("fast", "latent-sd", embedding_steps=2, finetune_steps=2, steps=2, eta=eta))
        outs[eta] = np.asarray(Image.open(tmp_path / "sw" / f"imagic-eta{eta}-seed0.png"))
    assert not np.array_equal(outs[0.0], outs[1.0])
    assert main(["replay", str(tmp_path / "sw" / "imagic-eta1.0-seed1.json"), "--quiet"]) == 0


def test_cli_imagic_on_an_unconditional_model_says_so(tiny_dir, tmp_path, capsys):
    from PIL import Image

    from editing.cli import main

    Image.fromarray(_image()).save(tmp_path / "in.png")
    code = main(["imagic", "--image", str(tmp_path / "in.png"), "--target", "a red square", "--model", str(tiny_dir / "pixel-ddpm"),
                 "--device", "cpu", "--out", str(tmp_path / "out.png"), "--quiet"])
    assert code == 2 and "is unconditional" in capsys.readouterr().err


# ----------------------------------------------------------------------------- the emoji model (when present)
def _emoji_or_skip():
    from editing.models import EMOJI_DIR, load_model

    if not (EMOJI_DIR / "unet").is_dir():
        pytest.skip("the emoji model is not in this checkout")
    return load_model("emoji", device="cpu")


# rms (on [0, 1] pixels) of the eta = 0 render to the input with the fast preset: measured below.
EMOJI_RECONSTRUCTION_BOUND = 0.22


@pytest.mark.slow
def test_emoji_eta_zero_reconstructs_and_eta_moves_towards_the_target_text():
    """The fast preset on the real model, green apple -> "red apple" (about a minute of CPU: --runslow).

    Towards the target: the distance to the loaded model's own sample of the target text (same
    seed) should shrink as eta grows; on the interim CPU-trained model it may not (then XFAIL). The
    emoji encoder's text alignment is printed, not asserted: on the interim model it does not rise
    with eta for the apple (README, "Imagic"), because that model cannot draw a red apple yet.
    """
    from benchmarks.bench_imagic import alignment, input_image

    model = _emoji_or_skip()
    source, target = "green apple, google style", "red apple, google style"
    image, _ = input_image(model, source)
    config = ImagicConfig.from_preset("fast", "pixel-text")
    state = final(optimize_imagic(model, image, target, config, cache=None))
    plain = final(optimize_imagic(model, image, target, ImagicConfig(**{**config.__dict__, "embedding_steps": 0, "finetune_steps": 0}),
                                  cache=None))
    target_sample = final(render_imagic(model, plain, ImagicConfig(**{**config.__dict__, "eta": 1.0})))
    outs = {eta: final(render_imagic(model, state, ImagicConfig(**{**config.__dict__, "eta": eta}))) for eta in (0.0, 0.7, 1.0)}
    errors = {eta: _rms(out, image) for eta, out in outs.items()}
    to_target = {eta: _rms(out, target_sample) for eta, out in outs.items()}
    scores = alignment(list(outs.values()), [target, source])
    print(f"rms to the input {errors}; to the plain target sample {to_target}; "
          f"alignment (target, source) {None if scores is None else scores.round(3).tolist()}")
    assert errors[0.0] < EMOJI_RECONSTRUCTION_BOUND
    assert errors[1.0] > errors[0.0]  # eta moves the render off the input
    if not to_target[1.0] < to_target[0.0]:
        # A property of the model, not of the code (the direction is asserted on tiny models above):
        # the 356-minute interim model moves the apple off the input but not towards its own red
        # apple (README, "Imagic"); the 265-minute one did. Reported, not hidden: XFAIL until it holds.
        pytest.xfail(f"eta = 1 is not nearer the plain model's target sample than eta = 0: {to_target}")
