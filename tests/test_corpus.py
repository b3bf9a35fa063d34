"""The emoji corpus builder on bundled hand-drawn fixtures (no package download)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("resvg_py")

from training import corpus  # noqa: E402

PKGS = Path(__file__).parent / "fixtures" / "corpus" / "pkgs"
SOURCES = {"google", "twemoji", "fluent", "fluent3d"}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus")
    corpus.main(
        ["--out", str(out), "--pkgs", str(PKGS), "--size", "16", "--workers", "1", "--sources", ",".join(sorted(SOURCES))]
    )
    data = dict(np.load(out / "emoji16.npz"))
    return out, data


def test_sizes_and_counts(built):
    out, d = built
    n = len(d["images"])
    # 2 google PNGs + 2 twemoji SVGs + 2 fluent flat + 1 fluent modern
    assert n == 7
    assert d["images"].shape == (n, 16, 16, 3) and d["images"].dtype == np.uint8
    for key in ("captions", "emoji", "source", "split", "flip"):
        assert len(d[key]) == n
    assert set(d["source"].tolist()) == SOURCES
    assert "CC-BY-4.0" in (out / "ATTRIBUTION.md").read_text()


def test_transparency_is_composited_on_white(built):
    _, d = built
    for im in d["images"]:
        assert (im[0, 0] == 255).all() and (im[-1, -1] == 255).all()  # transparent corners -> white
    red = d["images"][(d["source"] == "google") & (d["emoji"] == "\U0001f534")][0]
    r, g, b = red[8, 8].astype(int)
    assert r > 180 and g < 90 and b < 100  # the disc's centre keeps its colour


def test_area_downsampling_matches_opencv():
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[:, :32] = (0, 0, 0, 255)  # left half opaque black, right half transparent
    out = corpus.to_size(corpus.on_white(rgba), 16)
    assert out.shape == (16, 16, 3)
    assert (out[:, :8] == 0).all() and (out[:, 8:] == 255).all()
    half = np.zeros((2, 2, 4), np.uint8)
    half[..., 3] = 128  # 50 % black on white -> mid grey
    assert abs(int(corpus.on_white(half)[0, 0, 0]) - 127) <= 1


def test_captions_are_cldr_names_plus_style(built):
    _, d = built
    caps = set(d["captions"].tolist())
    assert "red circle, twemoji style" in caps
    assert "red circle, fluent flat style" in caps
    assert "red circle, fluent 3d style" in caps
    assert "grinning face, google style" in caps
    assert "left arrow, twemoji style" in caps
    assert "thumbs up dark skin tone, fluent flat style" in caps  # fluent's "-dark" suffix -> the skin-tone emoji


def test_flip_only_where_meaning_survives(built):
    _, d = built
    flips = dict(zip(d["captions"].tolist(), d["flip"].tolist(), strict=True))
    assert flips["red circle, twemoji style"]
    assert not flips["left arrow, twemoji style"]
    assert not corpus.flippable("\U0001f1e9\U0001f1ea", "Flags")  # a flag
    assert not corpus.flippable("\U0001f449")  # backhand index pointing right
    assert corpus.flippable("\U0001f34e")  # red apple
    # "leftwards" is no word "left", "two-thirty" no "o'clock": mirrored, each became another emoji
    for char in ("\U0001faf2", "\U0001faf8", "\U0001f55d", "\U0001f567"):  # leftwards hand, rightwards pushing hand, two-, twelve-thirty
        assert not corpus.flippable(char), corpus.cldr_name(char)


def test_split_is_by_emoji_across_styles_and_skin_tones(built):
    import emoji

    _, d = built
    for e in set(d["emoji"].tolist()):
        assert len(set(d["split"][d["emoji"] == e].tolist())) == 1
    # skin-tone variants share the split of their base emoji
    for base in ("\U0001f44d", "\U0001f44b", "\U0001f9d1"):
        for tone in range(0x1F3FB, 0x1F400):
            assert corpus.is_heldout(base + chr(tone)) == corpus.is_heldout(base)
    bases = {corpus.base_emoji(c) for c in emoji.EMOJI_DATA}
    frac = np.mean([corpus.is_heldout(b) for b in bases])
    assert 0.015 < frac < 0.05  # about 3 %, deterministic
    assert [corpus.is_heldout(b) for b in sorted(bases)[:50]] == [corpus.is_heldout(b) for b in sorted(bases)[:50]]


def test_codepoint_file_names_resolve_to_fully_qualified_emoji():
    assert corpus.from_codes("2764") == "\u2764\ufe0f"  # twemoji drops U+FE0F
    assert corpus.from_codes("1f600") == "\U0001f600"
    assert corpus.from_codes("not-hex") is None


def test_encoder_trains_end_to_end_on_a_built_corpus(built, tmp_path):
    """`python -m training.train_encoder` on a corpus with no held-out google image (these fixtures,
    or `--sources noto`) wrote its weights, then crashed before its captions and summary."""
    import json

    from training import train_encoder

    _, d = built
    held = (d["source"] != "google") & (d["captions"] == d["captions"][d["source"] != "google"][0])
    corpus_file = tmp_path / "emoji16.npz"  # one emoji held out, in no google picture: the case that crashed
    np.savez(corpus_file, **{**d, "split": np.where(held, "heldout", "train")})
    enc = tmp_path / "enc"
    train_encoder.main(["--corpus", str(corpus_file), "--out", str(enc), "--max-steps", "2", "--batch-size", "4",
                        "--threads", "1"])  # fmt: skip
    captions = json.loads((enc / "reference_captions.json").read_text())
    assert len(captions) == held.sum() and json.loads((enc / "training_summary.json").read_text())["steps"] == 2
    shown = json.loads((enc / "heldout_examples.json").read_text())
    assert shown and set(shown) <= set(captions)
    # the evaluation scores with the encoder it is given (a retrained one was usable only over the shipped one):
    # one that is not there is said, where the shipped one would have loaded
    from training import evaluate

    with pytest.raises(SystemExit, match=r"^No emoji encoder at .*nope: train one with"):
        evaluate.main(["reference", "--encoder", str(tmp_path / "nope"), "--corpus", str(corpus_file), "--model", str(tmp_path)])
    empty = tmp_path / "no-heldout.npz"
    np.savez(empty, **{**d, "split": np.full(len(d["split"]), "train")})
    with pytest.raises(SystemExit):
        train_encoder.main(["--corpus", str(empty), "--out", str(tmp_path / "x"), "--max-steps", "1"])
    assert not (tmp_path / "x").exists()
