"""Model bundles and load_model, on the tiny random models of every family (tests/tiny_models.py).

The reference checks call the diffusers networks directly, the way their own pipelines do, and
compare with `bundle.eps`; loading always goes through `load_model` on real saved folders.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import editing.models as models
from editing.models import PRESETS, ModelNotFoundError, detect_family, hash_weights, load_model
from editing.models.common import component_dir
from editing.models.latent_sd import LATENT_RGB_FACTORS
from editing.models.minilm import shared_minilm
from editing.schedule import VESchedule, VPSchedule
from tests import tiny_models as tiny

FAMILIES = ["pixel-text", "pixel-ddpm", "ve", "latent-sd"]
REPO = Path(__file__).resolve().parents[1]


def _image(res: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (res, res, 3), dtype=np.uint8)


def _x(bundle, batch: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, *bundle.latent_shape, generator=torch.Generator().manual_seed(seed))


def _t(bundle, batch: int = 2) -> torch.Tensor:
    """Fractional VP times, or sigmas for VE."""
    return torch.tensor([617.25, 40.5][:batch]) if bundle.kind == "vp" else torch.tensor([12.5, 0.3][:batch])


# ---------------------------------------------------------------------------------------------
# Shapes, ranges and round trips
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_bundle_shapes_and_dtypes(tiny_models, family):
    b = tiny_models[family]
    assert b.family == family and detect_family(Path(b.model_id)) == family
    assert b.device == torch.device("cpu") and b.dtype == torch.float32  # load_model's CPU defaults
    assert not b.unet.training and not any(p.requires_grad for p in b.unet.parameters())
    res = b.resolution
    x = b.encode_image(_image(res))
    assert x.shape == (1, *b.latent_shape) and x.dtype == torch.float32
    for out in (b.decode(x), b.preview(x)):
        assert out.shape == (1, res, res, 3) and out.dtype == np.uint8
    cond = b.encode_prompt(["a photo of a cat", "a red car"])
    if b.conditional:
        assert cond.ndim == 3 and cond.shape[0] == 2 and cond.dtype == torch.float32
    else:
        assert cond is None
    with torch.no_grad():
        e = b.eps(_x(b), _t(b), cond)
    assert e.shape == (2, *b.latent_shape) and e.dtype == torch.float32 and torch.isfinite(e).all()
    info = b.info()
    assert (info.family, info.resolution, info.conditional) == (family, res, b.conditional)
    assert info.kind == ("ve" if family == "ve" else "vp")


def test_latent_shapes_follow_configs(tiny_latent_sd, tiny_pixel_text):
    b = tiny_latent_sd
    assert b.vae_scale_factor == 2 ** (len(b.vae.config.block_out_channels) - 1) == 2
    assert b.latent_shape == (4, b.unet.config.sample_size, b.unet.config.sample_size)
    assert b.resolution == b.unet.config.sample_size * b.vae_scale_factor
    assert tiny_pixel_text.latent_shape == (3, 16, 16)
    assert b.encode_prompt(["a cat"]).shape == (1, b.tokenizer.model_max_length, b.text_encoder.config.hidden_size)


@pytest.mark.parametrize("family", ["pixel-text", "pixel-ddpm", "ve"])
def test_pixel_round_trip_is_exact(tiny_models, family):
    b = tiny_models[family]
    img = _image(b.resolution, seed=1)
    np.testing.assert_array_equal(b.decode(b.encode_image(img))[0], img)
    np.testing.assert_array_equal(b.preview(b.encode_image(img))[0], img)


def test_pixel_ranges(tiny_pixel_ddpm, tiny_ve):
    black, white = np.zeros((16, 16, 3), np.uint8), np.full((16, 16, 3), 255, np.uint8)
    # VP pixel models work on [-1, 1]; NCSN++ (ScoreSdeVePipeline) on [0, 1].
    assert tiny_pixel_ddpm.encode_image(black).min() == -1 and tiny_pixel_ddpm.encode_image(white).max() == 1
    assert tiny_ve.encode_image(black).min() == 0 and tiny_ve.encode_image(white).max() == 1
    assert tiny_pixel_ddpm.clip_range == (-1.0, 1.0) and tiny_ve.clip_range == (0.0, 1.0)


def test_latent_encode_is_the_scaled_posterior_mean(tiny_latent_sd):
    b = tiny_latent_sd
    img = _image(b.resolution, seed=2)
    z = b.encode_image(img)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 127.5 - 1
    with torch.no_grad():
        ref = b.vae.encode(x).latent_dist.mean * b.vae.config.scaling_factor
        torch.testing.assert_close(z, ref)
        assert torch.equal(b.encode_image(img), z)  # deterministic: the mean, not a sample
        dec = b.vae.decode(z / b.vae.config.scaling_factor).sample
    ref_img = ((dec.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    np.testing.assert_array_equal(b.decode(z), ref_img)


def test_latent_preview_is_the_linear_map_upsampled(tiny_latent_sd):
    b = tiny_latent_sd
    z = _x(b, batch=1, seed=3)
    rgb = torch.einsum("bchw,cr->brhw", z, LATENT_RGB_FACTORS)  # (1, 3, 8, 8)
    expected = ((rgb.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    prev = b.preview(z)
    f = b.vae_scale_factor
    np.testing.assert_array_equal(prev[:, ::f, ::f], expected)
    np.testing.assert_array_equal(prev[:, 1::f, 1::f], expected)  # nearest: constant f x f blocks


# ---------------------------------------------------------------------------------------------
# eps against the diffusers networks called directly
# ---------------------------------------------------------------------------------------------


@torch.no_grad()
def test_pixel_ddpm_eps_matches_unet(tiny_pixel_ddpm):
    b = tiny_pixel_ddpm
    x, t = _x(b), _t(b)
    torch.testing.assert_close(b.eps(x, t, None), b.unet(x, t).sample)
    # the fractional time reaches the network (no rounding to an integer timestep)
    assert not torch.allclose(b.eps(x, torch.tensor([617.25, 40.5]), None), b.eps(x, torch.tensor([617.0, 40.0]), None))
    # a scalar t is broadcast to the batch
    torch.testing.assert_close(b.eps(x, 617.25, None), b.eps(x, torch.full((2,), 617.25), None))


@torch.no_grad()
def test_pixel_text_eps_matches_unet_with_minilm(tiny_pixel_text):
    b = tiny_pixel_text
    prompts = ["a smiling face", "a red car"]
    cond = b.encode_prompt(prompts)
    torch.testing.assert_close(cond, shared_minilm(16).pooled(prompts)[:, None, :])  # "pooled": (B, 1, 384)
    x, t = _x(b), _t(b)
    torch.testing.assert_close(b.eps(x, t, cond), b.unet(x, t, encoder_hidden_states=cond).sample)
    assert not torch.allclose(b.eps(x, t, cond), b.eps(x, t.round(), cond))
    # None is the empty prompt, the unconditional half of classifier-free guidance
    torch.testing.assert_close(b.eps(x, t, None), b.eps(x, t, b.encode_prompt([""])))
    assert b.recommended_guidance_scale == 3.0


@torch.no_grad()
def test_ve_eps_is_minus_sigma_times_score(tiny_ve):
    b = tiny_ve
    assert isinstance(b.schedule, VESchedule) and (b.schedule.sigma_min, b.schedule.sigma_max) == (0.01, 50.0)
    x, sigma = _x(b), _t(b)
    score = b.unet(x, sigma).sample  # diffusers' fourier UNet2DModel already divides by sigma
    torch.testing.assert_close(b.eps(x, sigma, None), -sigma.view(-1, 1, 1, 1) * score)


@torch.no_grad()
def test_latent_sd_eps_matches_unet_with_clip(tiny_latent_sd):
    b = tiny_latent_sd
    prompts = ["a photo of a cat", "a dog"]
    ids = b.tokenizer(prompts, padding="max_length", max_length=b.tokenizer.model_max_length, return_tensors="pt").input_ids
    states = b.text_encoder(ids).last_hidden_state
    torch.testing.assert_close(b.encode_prompt(prompts), states)
    x, t = _x(b), _t(b)
    torch.testing.assert_close(b.eps(x, t, states), b.unet(x, t, encoder_hidden_states=states).sample)


@pytest.mark.parametrize("family", ["pixel-text", "latent-sd"])
@torch.no_grad()
def test_cond_of_batch_one_is_broadcast(tiny_models, family):
    b = tiny_models[family]
    cond = b.encode_prompt(["a smiling cat"])
    x, t = _x(b, batch=2), _t(b)
    torch.testing.assert_close(b.eps(x, t, cond), b.eps(x, t, cond.expand(2, -1, -1)))
    with pytest.raises(ValueError, match="cond must be"):
        b.eps(_x(b, batch=3), 10.0, b.encode_prompt(["a", "b"]))


def test_eps_keeps_autograd_for_imagic(tiny_pixel_text):
    b = tiny_pixel_text
    emb = b.encode_prompt(["a smiling face"]).clone().requires_grad_(True)
    with torch.enable_grad():
        b.eps(_x(b, batch=1), 300.0, emb).square().mean().backward()
    assert emb.grad is not None and emb.grad.abs().sum() > 0
    assert all(p.grad is None for p in b.unet.parameters())  # the loaded network stays frozen


def test_v_prediction_and_vae_scale_from_config(tmp_path):
    """A latent model with v-prediction and a non-default VAE scale: both read from the folder."""
    folder = tiny.save_tiny_latent_sd(tmp_path / "sd-v", prediction_type="v_prediction", scaling_factor=0.5)
    b = load_model(folder, device="cpu")
    assert b.prediction_type == "v_prediction" and b.scaling_factor == 0.5
    img = _image(b.resolution, seed=4)
    x_img = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 127.5 - 1
    with torch.no_grad():
        torch.testing.assert_close(b.encode_image(img), b.vae.encode(x_img).latent_dist.mean * 0.5)
        # eps = sqrt(abar) v + sqrt(1 - abar) x_t, abar from diffusers' own scheduler at integer t
        from diffusers import DDIMScheduler

        abar = DDIMScheduler.from_pretrained(folder / "scheduler").alphas_cumprod[torch.tensor([700, 25])].view(-1, 1, 1, 1)
        x, t = _x(b), torch.tensor([700.0, 25.0])
        cond = b.encode_prompt(["a cat"])
        v = b.unet(x, t, encoder_hidden_states=cond.expand(2, -1, -1)).sample
        torch.testing.assert_close(b.eps(x, t, cond), abar.sqrt() * v + (1 - abar).sqrt() * x)
        # and x0 from that eps is the v-parametrisation's x0 = sqrt(abar) x_t - sqrt(1 - abar) v
        x0 = (x - (1 - abar).sqrt() * b.eps(x, t, cond)) / abar.sqrt()
        torch.testing.assert_close(x0, abar.sqrt() * x - (1 - abar).sqrt() * v, atol=1e-4, rtol=1e-4)


@torch.no_grad()
def test_sample_prediction_is_converted_at_fractional_times(tmp_path):
    """An x0-predicting model: eps = (x_t - sqrt(abar) x0) / sqrt(1 - abar), abar interpolated at fractional t."""
    b = load_model(tiny.save_tiny_pixel_ddpm(tmp_path / "x0", prediction_type="sample"), device="cpu")
    assert b.prediction_type == "sample"
    x, t = _x(b), torch.tensor([300.0, 12.5])
    abar = b.schedule.alpha_bar(t.double()).float().view(-1, 1, 1, 1)
    ac = b.schedule.alphas_cumprod
    assert torch.isclose(abar[0, 0, 0, 0].double(), ac[300], rtol=1e-6)
    assert torch.isclose(abar[1, 0, 0, 0].double(), (ac[12] * ac[13]).sqrt(), rtol=1e-6)  # log-linear midpoint
    x0 = b.unet(x, t).sample
    torch.testing.assert_close(b.eps(x, t, None), (x - abar.sqrt() * x0) / (1 - abar).sqrt())


def test_pixel_text_tokens_with_attention_mask(tmp_path):
    """ "tokens" + use_attention_mask: padded states are zero and eps equals the masked network call."""
    folder = tiny.save_tiny_pixel_text(tmp_path / "pt", text_conditioning="tokens", use_attention_mask=True)
    b = load_model(folder, device="cpu")
    prompts = ["a cat", "a smiling face with sunglasses"]
    states, mask = shared_minilm(16).tokens(prompts)
    cond = b.encode_prompt(prompts)
    assert cond.shape == (2, 16, 384)
    assert (cond[mask == 0] == 0).all() and (cond[mask == 1] != 0).any(-1).all()
    x, t = _x(b), _t(b)
    with torch.no_grad():
        ref = b.unet(x, t, encoder_hidden_states=states, encoder_attention_mask=mask).sample
        torch.testing.assert_close(b.eps(x, t, cond), ref)
        assert not torch.allclose(ref, b.unet(x, t, encoder_hidden_states=states).sample)  # the mask matters


@torch.no_grad()
def test_replace_runs_a_copy_and_leaves_the_original_untouched(tiny_pixel_ddpm):
    b = tiny_pixel_ddpm
    before = {k: v.clone() for k, v in b.unet.state_dict().items()}
    x, t = _x(b), _t(b)
    eps_before = b.eps(x, t, None)
    tuned = copy.deepcopy(b.unet)
    tuned.conv_out.bias.add_(0.5)
    b2 = b.replace(unet=tuned)
    assert b2.unet is tuned and b.unet is not tuned and b2.schedule is b.schedule and b2.family == b.family
    torch.testing.assert_close(b2.eps(x, t, None), eps_before + 0.5)
    torch.testing.assert_close(b.eps(x, t, None), eps_before, rtol=0, atol=0)
    assert all(torch.equal(v, before[k]) for k, v in b.unet.state_dict().items())


@pytest.mark.parametrize("family", ["pixel-text", "latent-sd"])
def test_finetuning_a_replaced_copy_never_touches_the_loaded_model(tiny_models, family):
    """Imagic's stage 2: gradients reach the copy's weights only; the loaded bundle stays bit-identical."""
    b = tiny_models[family]
    before = {k: v.clone() for k, v in b.unet.state_dict().items()}
    tuned = b.replace(unet=copy.deepcopy(b.unet).requires_grad_(True))
    opt = torch.optim.SGD(tuned.unet.parameters(), lr=0.1)
    with torch.enable_grad():
        tuned.eps(_x(b, batch=1), 300.0, b.encode_prompt(["a cat"])).square().mean().backward()
    opt.step()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in tuned.unet.parameters())
    assert all(p.grad is None and not p.requires_grad for p in b.unet.parameters())
    assert all(torch.equal(v, before[k]) for k, v in b.unet.state_dict().items())
    assert not all(torch.equal(v, before[k]) for k, v in tuned.unet.state_dict().items())


def test_dtype_flows_from_load_model(tiny_dir):
    b = load_model(tiny_dir / "pixel-ddpm", device="cpu", dtype=torch.bfloat16)
    assert b.dtype == torch.bfloat16 and b.unet.dtype == torch.bfloat16
    x = _x(b)
    with torch.no_grad():
        e = b.eps(x, _t(b), None)
    assert e.dtype == torch.float32 and b.encode_image(_image(16)).dtype == torch.float32


@torch.no_grad()
def test_ve_in_half_precision_keeps_its_fourier_frequencies_in_float32(tiny_dir):
    """A VE model's Fourier time features take log(sigma) times frequencies of size ~16-40; rounded
    to float16 (steps of 0.016-0.03) they shifted phases by up to 0.5 rad at the ends of the sigma
    range, and a float16 eps was 2-3 % off the float32 one there instead of 0.2 %. They stay float32."""
    full = load_model(tiny_dir / "ve", device="cpu", dtype=torch.float32)
    half = load_model(tiny_dir / "ve", device="cpu", dtype=torch.float16)
    assert half.dtype == torch.float16 and half.unet.time_proj.weight.dtype == torch.float32
    torch.testing.assert_close(half.unet.time_proj.weight, full.unet.time_proj.weight, rtol=0, atol=0)
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    for sigma in (0.01, 1.0, 50.0):
        a, b = full.eps(x, torch.tensor([sigma]), None), half.eps(x, torch.tensor([sigma]), None)
        assert float((b - a).norm() / a.norm()) < 0.006, sigma  # was 0.027 at 0.01 and 0.020 at 50


# ---------------------------------------------------------------------------------------------
# load_model: presets, errors, hashes
# ---------------------------------------------------------------------------------------------


def test_presets_table():
    assert PRESETS == {
        "emoji": None,
        "sd15": "stable-diffusion-v1-5/stable-diffusion-v1-5",
        "sd21-base": "stabilityai/stable-diffusion-2-1-base",
        "church": "google/ddpm-ema-church-256",
        "bedroom": "google/ddpm-ema-bedroom-256",
        "celebahq": "google/ddpm-ema-celebahq-256",
        "ncsnpp-celebahq": "google/ncsnpp-celebahq-256",
    }
    assert models.EMOJI_DIR == REPO / "assets" / "models" / "emoji"  # from the package, not the cwd
    import editing

    assert editing.load_model is load_model  # the public, lazily imported name


def test_emoji_preset_resolves_to_the_embedded_folder(monkeypatch, tiny_dir, tmp_path):
    monkeypatch.setattr(models, "EMOJI_DIR", tiny_dir / "pixel-text")
    b = load_model("emoji", device="cpu")
    assert b.family == "pixel-text" and b.model_id == "emoji"
    monkeypatch.setattr(models, "EMOJI_DIR", tmp_path / "missing")
    with pytest.raises(ModelNotFoundError, match=r"python -m training\.train_diffusion"):
        load_model("emoji")


def _one_sentence(msg: str) -> bool:
    body = msg.replace("e.g.", "")
    return "\n" not in msg and msg.endswith(".") and ". " not in body


@pytest.fixture
def offline_hub(monkeypatch, tmp_path):
    """Hub offline with an empty cache, so no test ever touches a developer's downloaded weights."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(models, "LOCAL_MODELS_DIR", tmp_path / "models")


def test_unknown_hub_id_offline_says_what_to_download(offline_hub):
    with pytest.raises(ModelNotFoundError) as err:
        load_model("nobody-here/no-such-model")
    msg = str(err.value)
    assert _one_sentence(msg), msg
    assert "hf download nobody-here/no-such-model --local-dir models/no-such-model" in msg
    assert isinstance(err.value, FileNotFoundError) and err.value.__cause__ is None


def test_hub_preset_offline_names_the_repo(offline_hub):
    with pytest.raises(ModelNotFoundError) as err:
        load_model("sd15")
    msg = str(err.value)
    assert _one_sentence(msg), msg
    assert "'sd15' (stable-diffusion-v1-5/stable-diffusion-v1-5)" in msg and "--model models/sd15" in msg


def test_hub_id_found_in_local_cache_offline(offline_hub, tiny_dir):
    """The offline fallback really loads a cached snapshot (laid out as huggingface_hub stores it)."""
    from huggingface_hub import constants

    repo = Path(constants.HF_HUB_CACHE) / "models--someone--tiny-ddpm"
    shutil.copytree(tiny_dir / "pixel-ddpm", repo / "snapshots" / "abc123")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    b = load_model("someone/tiny-ddpm", device="cpu")
    assert b.family == "pixel-ddpm" and b.model_id == "someone/tiny-ddpm"


def _flatten(folder: Path) -> Path:
    """The layout of google/ddpm-ema-*-256 and google/ncsnpp-*: UNet and scheduler files at the root."""
    for part in ("unet", "scheduler"):
        for f in (folder / part).iterdir():
            f.rename(folder / f.name)
        (folder / part).rmdir()
    return folder


@pytest.mark.parametrize("family", ["pixel-ddpm", "ve"])
def test_flat_google_layout_loads(tmp_path, tiny_dir, tiny_models, family):
    folder = _flatten(shutil.copytree(tiny_dir / family, tmp_path / family))
    assert (folder / "config.json").is_file() and (folder / "scheduler_config.json").is_file()
    b = load_model(folder, device="cpu")
    ref = tiny_models[family]
    assert b.family == family and b.latent_shape == ref.latent_shape
    x, t = _x(b), _t(b)
    with torch.no_grad():
        torch.testing.assert_close(b.eps(x, t, None), ref.eps(x, t, None))


class FakeHub:
    """snapshot_download over local "remote" folders, honouring allow/ignore patterns like the hub."""

    def __init__(self, cache: Path, remotes: dict[str, Path]):
        self.cache, self.remotes, self.calls = cache, remotes, []

    def __call__(self, repo_id, *, allow_patterns=None, ignore_patterns=None, local_files_only=False, **kw):
        from huggingface_hub.utils import filter_repo_objects

        self.calls.append((allow_patterns, local_files_only))
        remote, local = self.remotes[repo_id], self.cache / repo_id.replace("/", "--")
        files = [p.relative_to(remote).as_posix() for p in remote.rglob("*") if p.is_file()]
        for rel in filter_repo_objects(files, allow_patterns=allow_patterns, ignore_patterns=ignore_patterns):
            (local / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(remote / rel, local / rel)
        return str(local)


def test_hub_download_fetches_only_what_the_bundle_reads(monkeypatch, tmp_path, tiny_dir):
    import huggingface_hub

    sd = shutil.copytree(tiny_dir / "latent-sd", tmp_path / "remote-sd")
    (sd / "unet" / "diffusion_pytorch_model.fp16.safetensors").write_bytes(b"fp16 variant")
    (sd / "v1-5-pruned.ckpt").write_bytes(b"single-file checkpoint")
    (sd / "safety_checker").mkdir()
    (sd / "safety_checker" / "model.safetensors").write_bytes(b"safety checker")
    index = json.loads((sd / "model_index.json").read_text())
    index["safety_checker"] = ["stable_diffusion", "StableDiffusionSafetyChecker"]
    (sd / "model_index.json").write_text(json.dumps(index))
    # a flat repo with .bin weights only, as google/ddpm-ema-church-256
    ddpm = _flatten(shutil.copytree(tiny_dir / "pixel-ddpm", tmp_path / "remote-ddpm"))
    from diffusers import UNet2DModel

    UNet2DModel.from_pretrained(ddpm).save_pretrained(ddpm, safe_serialization=False)
    (ddpm / "diffusion_pytorch_model.safetensors").unlink()

    hub = FakeHub(tmp_path / "cache", {"org/tiny-sd": sd, "org/tiny-ddpm": ddpm})
    monkeypatch.setattr(huggingface_hub, "snapshot_download", hub)
    b = load_model("org/tiny-sd", device="cpu")
    got = {p.relative_to(hub.cache / "org--tiny-sd").as_posix() for p in (hub.cache / "org--tiny-sd").rglob("*") if p.is_file()}
    assert b.family == "latent-sd" and "unet/diffusion_pytorch_model.safetensors" in got
    assert not {"unet/diffusion_pytorch_model.fp16.safetensors", "v1-5-pruned.ckpt", "safety_checker/model.safetensors"} & got
    assert all(not offline for _, offline in hub.calls)  # online worked: no cache fallback
    b = load_model("org/tiny-ddpm", device="cpu")
    assert b.family == "pixel-ddpm" and (hub.cache / "org--tiny-ddpm" / "diffusion_pytorch_model.bin").is_file()


@pytest.mark.parametrize("error", ["RepositoryNotFoundError", "GatedRepoError"])
def test_hub_refusals_are_one_sentence(monkeypatch, offline_hub, error):
    import httpx
    import huggingface_hub
    from huggingface_hub import errors

    response = httpx.Response(401, request=httpx.Request("GET", "https://huggingface.co/api/models/org/x"))

    def refuse(repo_id, **kw):
        raise getattr(errors, error)("refused", response=response)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", refuse)
    with pytest.raises(ModelNotFoundError) as err:
        load_model("org/x")
    msg = str(err.value)
    assert _one_sentence(msg), msg
    assert ("hf auth login" in msg) and (("gated" in msg) == (error == "GatedRepoError"))


def test_missing_local_path(tmp_path):
    with pytest.raises(ModelNotFoundError) as err:
        load_model(tmp_path / "nothing" / "here")
    assert str(err.value).startswith(f"No model folder at '{tmp_path / 'nothing' / 'here'}'")
    assert _one_sentence(str(err.value))


@pytest.mark.parametrize("name", ["models/sd15", "./models/sd15", "{tmp}/models/sd15"])
def test_a_presets_download_folder_not_there_yet_names_the_preset(name, tmp_path, monkeypatch):
    """The README downloads sd15 to models/sd15 and passes --model models/sd15: without the folder, the message
    read "models/sd15" as a hub id and told the user to `hf download models/sd15`."""
    monkeypatch.chdir(tmp_path)  # no models/ folder here
    name = name.format(tmp=tmp_path)
    with pytest.raises(ModelNotFoundError) as err:
        load_model(name)
    msg = str(err.value)
    assert _one_sentence(msg), msg
    assert f"hf download stable-diffusion-v1-5/stable-diffusion-v1-5 --local-dir {name}" in msg and "--model sd15" in msg


def test_unknown_folder_formats(tmp_path, tiny_dir):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("hi")
    with pytest.raises(ValueError, match="neither stroke_studio.json nor a diffusers model_index.json"):
        load_model(tmp_path / "junk")
    xl = tmp_path / "xl"
    xl.mkdir()
    (xl / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionXLPipeline"}))
    with pytest.raises(ValueError, match="StableDiffusionXLPipeline"):
        load_model(xl)
    with pytest.raises(ValueError, match="is a file"):
        load_model(tiny_dir / "pixel-ddpm" / "model_index.json")


def test_inpainting_unet_is_refused(tmp_path, tiny_dir):
    folder = shutil.copytree(tiny_dir / "latent-sd", tmp_path / "inpaint")
    cfg = json.loads((folder / "unet" / "config.json").read_text())
    (folder / "unet" / "config.json").write_text(json.dumps({**cfg, "in_channels": 9}))
    with pytest.raises(ValueError, match="inpainting or upscaling"):
        load_model(folder)


@pytest.mark.parametrize("family", ["pixel-ddpm", "ve", "latent-sd"])
def test_unet_sizes_the_engine_cannot_run_are_one_sentence_before_the_weights_load(tmp_path, tiny_dir, family):
    """diffusers allows sample_size [h, w] and null, and a 1-channel (greyscale) pixel UNet: a list or null
    was a TypeError traceback from int(), a greyscale DDPM loaded and failed mid-run in a convolution."""
    side = json.loads((component_dir(tiny_dir / family, "unet") / "config.json").read_text())["sample_size"]

    def variant(name: str, **changes) -> Path:
        folder = shutil.copytree(tiny_dir / family, tmp_path / name)
        path = component_dir(folder, "unet") / "config.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))
        return folder

    square = load_model(variant("square", sample_size=[side, side]), device="cpu")  # [n, n] is the square it was
    assert square.resolution == load_model(tiny_dir / family, device="cpu").resolution
    for name, size, shown in (("wide", [side, 2 * side], f"[{side}, {2 * side}]"), ("none", None, "none")):
        folder = variant(name, sample_size=size)
        with pytest.raises(ValueError) as err:
            load_model(folder, device="cpu")
        assert str(err.value) == (f"'{folder}': the UNet's config.json gives sample_size {shown}; Stroke Studio runs models that work "
                                  "on a square picture of one size (sample_size one whole number, or [n, n]).")  # fmt: skip
    if family != "latent-sd":  # a latent UNet's channels are the VAE's (test_inpainting_unet_is_refused)
        folder = variant("grey", in_channels=1, out_channels=1)
        with pytest.raises(ValueError, match=r"the UNet takes 1-channel pictures; Stroke Studio runs pixel models of RGB pictures \(3 "):
            load_model(folder, device="cpu")


def test_incomplete_folder_is_reported(tmp_path, tiny_dir):
    folder = tmp_path / "partial"
    shutil.copytree(tiny_dir / "latent-sd", folder)
    for w in (folder / "vae").glob("*.safetensors"):
        w.unlink()
    with pytest.raises(ModelNotFoundError) as err:
        load_model(folder)
    assert str(err.value) == f"The model folder '{folder}' is incomplete (vae weights missing): download the whole model again."
    flat = tmp_path / "no-unet"
    flat.mkdir()
    shutil.copy(tiny_dir / "pixel-ddpm" / "model_index.json", flat)
    with pytest.raises(ModelNotFoundError, match=r"incomplete \(unet/ missing\)"):
        load_model(flat)


def test_damaged_folders_are_one_sentence_naming_what_is_damaged(tmp_path, tiny_dir):
    """A truncated weight file was reported by the command line as a failure to write the result
    (diffusers raises OSError), and app.py printed a traceback; a broken JSON did not name its file."""
    folder = shutil.copytree(tiny_dir / "latent-sd", tmp_path / "truncated")
    weights = next((folder / "unet").glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(ModelNotFoundError) as err:
        load_model(folder)
    msg = str(err.value)
    assert msg.startswith(f"The model folder '{folder}' could not be loaded, its files are damaged") and _one_sentence(msg), msg
    assert msg.endswith("download the whole model again.") and "safetensors" in msg
    broken = shutil.copytree(tiny_dir / "latent-sd", tmp_path / "json")
    (broken / "model_index.json").write_text('{"_class_name": ')
    with pytest.raises(ValueError, match=rf"^'{re.escape(str(broken / 'model_index.json'))}' is damaged \(not valid JSON"):
        load_model(broken)
    bad_config = shutil.copytree(tiny_dir / "latent-sd", tmp_path / "config")
    (bad_config / "vae" / "config.json").write_text("{")
    with pytest.raises((ModelNotFoundError, ValueError), match="damaged"):
        load_model(bad_config)


def test_dtype_by_name(tiny_dir):
    assert load_model(tiny_dir / "pixel-ddpm", device="cpu", dtype="bfloat16").unet.dtype == torch.bfloat16
    with pytest.raises(ValueError, match=r"^dtype 'fp16' is not supported: use float32, float16 or bfloat16"):
        load_model(tiny_dir / "pixel-ddpm", device="cpu", dtype="fp16")


def test_weights_hash_is_stable_and_tracks_the_weights(tmp_path, tiny_dir, tiny_pixel_ddpm):
    folder = tiny_dir / "pixel-ddpm"
    assert tiny_pixel_ddpm.weights_hash == hash_weights(folder) == load_model(folder).weights_hash
    assert len(tiny_pixel_ddpm.weights_hash) == 16
    other = tiny.save_tiny_pixel_ddpm(tmp_path / "other", seed=1)
    assert hash_weights(other) != hash_weights(folder)
    assert hash_weights(tiny.save_tiny_pixel_ddpm(tmp_path / "again")) == hash_weights(folder)  # seeded builders
    copied = shutil.copytree(folder, tmp_path / "copy")
    assert hash_weights(copied) == hash_weights(folder)  # content, not location


def test_weights_hash_samples_large_files(tmp_path):
    """Large files: names, sizes and the first and last MiB are hashed (documented speed trade-off)."""
    big = tmp_path / "diffusion_pytorch_model.safetensors"
    data = bytearray(np.random.default_rng(0).integers(0, 256, 3 << 20, dtype=np.uint8).tobytes())
    big.write_bytes(data)
    h0 = hash_weights(tmp_path)
    for pos in (0, len(data) - 1):
        changed = bytearray(data)
        changed[pos] ^= 1
        big.write_bytes(changed)
        assert hash_weights(tmp_path) != h0
    big.write_bytes(data + b"\0")
    assert hash_weights(tmp_path) != h0


def test_import_editing_does_not_load_torch():
    code = "import sys, editing, editing.interface; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=120)


def test_vp_schedules_come_from_the_scheduler_configs(tiny_pixel_ddpm, tiny_latent_sd):
    from diffusers import DDIMScheduler, DDPMScheduler

    ref = DDPMScheduler(num_train_timesteps=1000).alphas_cumprod.double()
    assert isinstance(tiny_pixel_ddpm.schedule, VPSchedule)
    torch.testing.assert_close(tiny_pixel_ddpm.schedule.alphas_cumprod, ref)
    sd = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear").alphas_cumprod.double()
    torch.testing.assert_close(tiny_latent_sd.schedule.alphas_cumprod, sd)


@pytest.mark.gpu
def test_cuda_defaults_half_precision_with_fp32_vae(tiny_dir, tiny_latent_sd):
    b = load_model(tiny_dir / "latent-sd")  # device None -> cuda, dtype None -> float16
    assert b.device.type == "cuda" and b.dtype == torch.float16 and b.vae.dtype == torch.float32  # force_upcast
    x, t = _x(b), _t(b)
    cond = tiny_latent_sd.encode_prompt(["a cat"])
    with torch.no_grad():
        e = b.eps(x.cuda(), t.cuda(), cond.cuda())
        ref = tiny_latent_sd.eps(x, t, cond)
    assert e.dtype == torch.float32
    torch.testing.assert_close(e.cpu(), ref, atol=2e-2, rtol=2e-2)
    assert b.decode(b.encode_image(_image(b.resolution))).shape == (1, b.resolution, b.resolution, 3)


@pytest.mark.weights
@pytest.mark.parametrize("preset", ["emoji", "church", "ncsnpp-celebahq", "sd15"])
def test_real_presets_load(preset):
    """Opt-in (--runweights): the presets load from their real folders and run one eps call."""
    b = load_model(preset)
    x = b.encode_image(np.full((b.resolution, b.resolution, 3), 128, np.uint8))
    t = torch.tensor([b.schedule.sigma_max * 0.1 if b.kind == "ve" else 500.0], device=b.device)
    with torch.no_grad():
        e = b.eps(x, t, b.encode_prompt(["a photo"]) if b.conditional else None)
    assert e.shape == x.shape and torch.isfinite(e).all()


def test_a_prompt_that_is_not_text_is_one_sentence(tiny_latent_sd, tiny_pixel_text):
    for model in (tiny_latent_sd, tiny_pixel_text):
        with pytest.raises(ValueError, match=r'^a prompt must be text \(a str; "" for none\), got None$'):
            model.encode_prompt([None])


def test_prompt_reading_names_the_words_a_text_encoder_leaves_out_or_does_not_know(tiny_latent_sd, tiny_pixel_text):
    """Encoders truncate to a fixed number of tokens without a word (the emoji model reads 14)."""
    reading = tiny_pixel_text.prompt_reading("red apple")
    assert reading.left_out == "" and reading.unknown == () and reading.notices() == []
    words = " ".join(f"w{i}" for i in range(40))
    reading = tiny_pixel_text.prompt_reading(words + " 🍎")
    kept = words.split()[: len(words.split()) - len(reading.left_out.split()) + 1]
    assert reading.left_out.endswith("w39 🍎") and reading.unknown == ("🍎",)
    assert tiny_pixel_text.prompt_reading(" ".join(kept[:-1])).left_out == ""  # the words before the cut all fit
    assert reading.notices("the target prompt")[0].endswith("at the end of the target prompt is left out.")
    sd = tiny_latent_sd.prompt_reading("word " * 100)
    assert sd.tokens == 75 and 0 < len(sd.left_out.split()) < 100 and set(sd.left_out.split()) == {"word"}


def test_config_hash_tells_folders_with_the_same_weights_apart(tmp_path, tiny_dir):
    """weights_hash alone gave an epsilon and a v-prediction copy of one model the same fingerprint."""
    from editing.models import hash_configs

    a = shutil.copytree(tiny_dir / "pixel-ddpm", tmp_path / "a")
    b = shutil.copytree(tiny_dir / "pixel-ddpm", tmp_path / "b")
    assert hash_configs(a) == hash_configs(b) and len(hash_configs(a)) == 16
    sched = next(b.rglob("scheduler_config.json"))
    sched.write_text(json.dumps({**json.loads(sched.read_text()), "prediction_type": "v_prediction"}))
    assert hash_weights(a) == hash_weights(b) and hash_configs(a) != hash_configs(b)
    assert load_model(b).info().config_hash == hash_configs(b)
