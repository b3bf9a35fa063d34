"""Shared test setup: marker gating. Tiny random models live in tests/tiny_models.py."""

from __future__ import annotations

import os
import shutil

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow")
    parser.addoption("--runweights", action="store_true", default=False, help="run tests that need real model weights")


def pytest_collection_modifyitems(config, items):
    run_slow = config.getoption("--runslow") or os.environ.get("RUN_SLOW") == "1"
    run_weights = config.getoption("--runweights")
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:  # pragma: no cover
        has_cuda = False
    has_chromium = shutil.which("chromium") is not None
    for item in items:
        if "slow" in item.keywords and not run_slow:
            item.add_marker(pytest.mark.skip(reason="slow: use --runslow"))
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(pytest.mark.skip(reason="no CUDA GPU"))
        if "browser" in item.keywords and not has_chromium:
            item.add_marker(pytest.mark.skip(reason="Debian chromium not installed"))
        if "weights" in item.keywords and not run_weights:
            item.add_marker(pytest.mark.skip(reason="needs real weights: use --runweights"))


# --------------------------------------------------------------------------------------------
# Tiny random models of every family (tests/tiny_models.py), saved once per session and loaded
# through editing.load_model, so every test that uses them exercises the real loading code.
# Bundles are shared across the session: never mutate them (use bundle.replace(unet=...)).
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """A folder with every tiny model saved: tiny_dir / "pixel-text", "pixel-ddpm", "ve", "latent-sd"."""
    from tests.tiny_models import save_all

    root = tmp_path_factory.mktemp("tiny_models")
    save_all(root)
    return root


@pytest.fixture(scope="session")
def tiny_pixel_text(tiny_dir):
    from editing.models import load_model

    return load_model(tiny_dir / "pixel-text", device="cpu")


@pytest.fixture(scope="session")
def tiny_pixel_ddpm(tiny_dir):
    from editing.models import load_model

    return load_model(tiny_dir / "pixel-ddpm", device="cpu")


@pytest.fixture(scope="session")
def tiny_ve(tiny_dir):
    from editing.models import load_model

    return load_model(tiny_dir / "ve", device="cpu")


@pytest.fixture(scope="session")
def tiny_latent_sd(tiny_dir):
    from editing.models import load_model

    return load_model(tiny_dir / "latent-sd", device="cpu")


@pytest.fixture(scope="session")
def tiny_models(tiny_pixel_text, tiny_pixel_ddpm, tiny_ve, tiny_latent_sd):
    """family -> loaded tiny bundle, for tests that run over every family."""
    return {"pixel-text": tiny_pixel_text, "pixel-ddpm": tiny_pixel_ddpm, "ve": tiny_ve, "latent-sd": tiny_latent_sd}


@pytest.fixture(scope="session", autouse=True)
def _single_torch_thread():
    """Run torch single-threaded in tests (override with STROKE_TEST_THREADS).

    The tiny models are far too small to gain from intra-op threads, and on a shared 2-core machine
    the second thread only spins: a tiny UNet call measured 2.4 s with 2 threads, 0.03 s with 1.
    """
    import torch

    torch.set_num_threads(int(os.environ.get("STROKE_TEST_THREADS", "1")))
