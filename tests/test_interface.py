"""Configs validate their ranges; the interface stays torch-free."""

import subprocess
import sys

import numpy as np
import pytest

from editing.interface import (
    ColorEditConfig,
    EditConfig,
    Frame,
    Guide,
    InversionConfig,
    ModelInfo,
    SDEditConfig,
    ShiftConfig,
    config_fields,
    config_for,
    final,
)


@pytest.mark.parametrize(
    "make, text",
    [
        (lambda: SDEditConfig(t0=0.0), r"t0=0.0 is out of range; allowed: \(0.0, 1.0\]"),
        (lambda: SDEditConfig(t0=1.5), "t0=1.5"),
        (lambda: SDEditConfig(t0=float("nan")), "t0=nan"),
        (lambda: SDEditConfig(steps=0), r"steps=0 is out of range; allowed: \[1, 1000\]"),
        (lambda: SDEditConfig(steps=2.5), "steps must be an integer"),
        (lambda: SDEditConfig(sampler="euler"), "sampler"),
        (lambda: InversionConfig(eta=0.0), r"eta=0.0 is out of range; allowed: \(0.0, 1.0\]"),
        (lambda: EditConfig(guidance_scale=-1), "guidance_scale=-1"),
        (lambda: EditConfig(skip=-1), "skip=-1"),
        (lambda: SDEditConfig(t0="0.5"), "t0 must be a number, got '0.5'"),  # was a TypeError from a comparison
        (lambda: ColorEditConfig(keep_outside="no"), "keep_outside must be True or False, got 'no'"),  # "no" was on
    ],
)
def test_bad_values_name_the_allowed_range(make, text):
    with pytest.raises(ValueError, match=text):
        make()


def test_paper_defaults():
    inv, ed, sd = InversionConfig(), EditConfig(), SDEditConfig()
    assert (inv.steps, inv.eta, inv.source_guidance_scale) == (100, 1.0, 3.5)
    assert (ed.skip, ed.guidance_scale) == (36, 15.0)
    assert sd.t0 == 0.5
    assert [n for n, _ in config_fields(EditConfig)] == ["skip", "guidance_scale", "preview_every"]


def test_config_for_fills_what_is_left_out_with_the_models_defaults_then_the_papers():
    info = ModelInfo("m", "pixel-text", 32, True, "vp", 1000, recommended_guidance_scale=1.0,
                     recommended_edit_guidance_scale=3.0, recommended_edit_skip_fraction=0.1)  # fmt: skip
    assert config_for(info, SDEditConfig, t0=0.3, steps=20) == SDEditConfig(t0=0.3, steps=20, guidance_scale=1.0)
    assert config_for(info, SDEditConfig, guidance_scale=None) == SDEditConfig(guidance_scale=1.0)  # None: not given
    assert config_for(info, EditConfig, 50) == EditConfig(skip=5, guidance_scale=3.0)  # the model's share of 50 steps
    assert config_for(info, EditConfig, 50, skip=7) == EditConfig(skip=7, guidance_scale=3.0)
    assert config_for(None, EditConfig, 50) == EditConfig(skip=18)  # the paper's 36 of 100
    assert config_for(None, EditConfig) == EditConfig()
    assert config_for(info, ShiftConfig, 20) == ShiftConfig(skip=0)  # the paper's 0, the model names none
    assert config_for(info, ColorEditConfig, 50) == ColorEditConfig(t1=0, t2=30, skip=0)  # 60 of 100 is 30 of 50
    assert config_for(info, InversionConfig, steps=50) == InversionConfig(steps=50)  # steps= is the field
    with pytest.raises(TypeError, match="SDEditConfig has no field 'tzero'"):
        config_for(info, SDEditConfig, tzero=0.5)
    with pytest.raises(ValueError, match="t0=2"):
        config_for(info, SDEditConfig, t0=2)


def test_guide_checks_shapes():
    img = np.zeros((8, 6, 3), np.uint8)
    Guide(img, mask=np.ones((8, 6), bool))
    with pytest.raises(ValueError, match="uint8"):
        Guide(img.astype(np.float32))
    with pytest.raises(ValueError, match="mask"):
        Guide(img, mask=np.ones((6, 8), bool))


def test_final_returns_the_done_frames_result_and_rejects_truncated_streams():
    frames = [Frame(1, 2), Frame(2, 2, stage="done", result="R")]
    assert final(iter(frames)) == "R"
    with pytest.raises(RuntimeError):
        final(iter(frames[:1]))


def test_interface_and_package_import_without_torch():
    code = "import sys, editing, editing.interface; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_public_functions_survive_importing_their_submodules():
    # `import editing.sdedit` would bind the submodule over the function editing.sdedit.
    code = (
        "import editing.sdedit, editing.imagic, editing.inversion, editing\n"
        "assert callable(editing.sdedit) and editing.sdedit.__module__ == 'editing.sdedit', editing.sdedit\n"
        "assert callable(editing.imagic) and editing.imagic.__module__ == 'editing.imagic', editing.imagic\n"
        "assert callable(editing.invert) and callable(editing.edit)\n"
        "import sys; assert sys.modules['editing.sdedit'].sdedit is editing.sdedit\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
