"""The fast path computes the same eps, and leaves the bundle it was given untouched."""

from __future__ import annotations

import copy

import pytest
import torch

from editing.fastpath import accelerate, plain_unet


def _inputs(model, batch: int = 2):
    g = torch.Generator().manual_seed(0)
    x = torch.randn((batch, *model.latent_shape), generator=g)
    t = torch.tensor([731.25, 12.5][:batch])
    cond = model.encode_prompt(["a red apple"] * batch) if model.conditional else None
    return x, t, cond


def _processors(module: torch.nn.Module) -> dict[str, type]:
    return {name: type(m.processor) for name, m in module.named_modules() if hasattr(m, "set_processor")}


def _set_processors(module: torch.nn.Module, processor) -> None:
    for m in module.modules():
        if hasattr(m, "set_processor"):
            m.set_processor(processor)


def _snapshot(module: torch.nn.Module):
    return {k: (v.clone(), v.stride()) for k, v in module.state_dict().items()}, _processors(module)


@pytest.mark.parametrize(("family", "options"), [
    ("pixel-ddpm", {"channels_last": True}),
    ("latent-sd", {"channels_last": True}),
    # torch.compile's wrapper and the graph-safe output copy, traced by dynamo (the "eager" backend
    # keeps it fast on a CPU; inductor's kernels are the benchmarks' business)
    ("latent-sd", {"channels_last": False, "cuda_graphs": True, "compile_backend": "eager"}),
    # fused query/key/value projections (diffusers' fuse_qkv_projections) on the copy only
    ("latent-sd", {"channels_last": True, "fuse_qkv": True}),
])
def test_accelerated_eps_matches_and_original_unchanged(tiny_models, family, options):
    from diffusers.models.attention_processor import AttnProcessor

    # a private copy of the session's bundle (this test switches its attention processors)
    model = tiny_models[family].replace(unet=copy.deepcopy(tiny_models[family].unet))
    x, t, cond = _inputs(model)
    with torch.no_grad():
        ref = model.eps(x, t, cond)
    # a UNet that some pipeline switched to the classic attention processor: sdpa=True restores SDPA
    # on the copy only
    _set_processors(model.unet, AttnProcessor())
    assert set(_processors(model.unet).values()) == {AttnProcessor}
    unet_before = model.unet
    params_before, procs_before = _snapshot(model.unet)
    fast = accelerate(model, **options)
    with torch.no_grad():
        out = fast.eps(x, t, cond)
    torch.testing.assert_close(out, ref, atol=2e-5, rtol=1e-4)
    assert fast is not model and fast.unet is not model.unet
    # the original: same module, same parameters bit for bit (and layout), same processors
    assert model.unet is unet_before
    params_after, procs_after = _snapshot(model.unet)
    assert procs_after == procs_before
    for k, (v, stride) in params_before.items():
        assert torch.equal(params_after[k][0], v) and params_after[k][1] == stride, k
    from diffusers.models.attention_processor import AttnProcessor2_0, FusedAttnProcessor2_0

    expected = FusedAttnProcessor2_0 if options.get("fuse_qkv") else AttnProcessor2_0
    assert set(_processors(plain_unet(fast.unet)).values()) == {expected}
    if options.get("channels_last"):
        w = next(p for p in plain_unet(fast.unet).parameters() if p.ndim == 4)
        assert w.is_contiguous(memory_format=torch.channels_last)
    assert fast.fastpath["channels_last"] == options.get("channels_last")


def test_accelerated_bundle_runs_a_whole_edit(tiny_latent_sd):
    from editing.interface import SDEditConfig, final
    from editing.sdedit import sdedit

    model = tiny_latent_sd
    guide = (torch.rand(model.resolution, model.resolution, 3, generator=torch.Generator().manual_seed(1)) * 255).byte().numpy()
    cfg = SDEditConfig(t0=0.5, steps=10, guidance_scale=4.0, seed=3)
    ref = final(sdedit(model, guide, cfg, prompt="a cat"))
    out = final(sdedit(accelerate(model), guide, cfg, prompt="a cat"))
    assert abs(out.astype(int) - ref.astype(int)).max() <= 1


def test_compiled_vae_and_fused_projections_run_a_whole_edit(tiny_latent_sd):
    """compile_vae compiles the VAE copy's encode and decode (traced with the eager backend here),
    fuse_qkv fuses the UNet's and the VAE's projections: the edit is the plain one, and the
    bundle's own VAE keeps its plain methods."""
    from editing.interface import SDEditConfig, final
    from editing.sdedit import sdedit

    model = tiny_latent_sd
    guide = (torch.rand(model.resolution, model.resolution, 3, generator=torch.Generator().manual_seed(1)) * 255).byte().numpy()
    cfg = SDEditConfig(t0=0.5, steps=10, guidance_scale=4.0, seed=3)
    ref = final(sdedit(model, guide, cfg, prompt="a cat"))
    fast = accelerate(model, fuse_qkv=True, compile=True, compile_vae=True, compile_backend="eager")
    assert fast.vae is not model.vae and "encode" not in vars(model.vae) and "decode" not in vars(model.vae)
    assert "decode" in vars(fast.vae) and fast.fastpath["compile_vae"] and fast.fastpath["fuse_qkv"]
    out = final(sdedit(fast, guide, cfg, prompt="a cat"))
    assert abs(out.astype(int) - ref.astype(int)).max() <= 1


def test_inductor_options_reach_torch_compile(tiny_latent_sd, monkeypatch):
    """inductor_options go to torch.compile as `options` (not with a mode: torch takes one), CUDA
    graphs as "triton.cudagraphs" for the UNet only; other backends get the mode."""
    from editing.fastpath import DIFFUSERS_RECIPE

    calls = []
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: calls.append(kw) or fn)
    fast = accelerate(tiny_latent_sd, inductor_options=DIFFUSERS_RECIPE, cuda_graphs=True, compile_vae=True)
    unet_kw, enc_kw, dec_kw = calls
    assert unet_kw["options"] == {**DIFFUSERS_RECIPE, "triton.cudagraphs": True} and "mode" not in unet_kw
    assert enc_kw["options"] == dec_kw["options"] == DIFFUSERS_RECIPE
    assert fast.fastpath["compile"] == "options" and fast.fastpath["cuda_graphs"]
    calls.clear()
    accelerate(tiny_latent_sd, compile="max-autotune-no-cudagraphs", inductor_options=DIFFUSERS_RECIPE, compile_backend="eager")
    assert calls == [{"mode": "max-autotune-no-cudagraphs", "backend": "eager", "fullgraph": False}]


def test_nothing_to_change_keeps_the_modules():
    unet = torch.nn.Conv2d(3, 3, 1)

    class B:
        def __init__(self, unet):
            self.unet = unet

        def replace(self, *, unet):
            return B(unet)

    b = B(unet)
    fast = accelerate(b, channels_last=False)
    assert fast.unet is unet  # no copy when no toggle changes anything


def test_graph_capture_needs_cuda_and_the_wrapper_is_the_unet_off_cuda(tiny_latent_sd):
    """graph_capture is CUDA only (tests/test_gpu.py compares it with eager on a GPU). Off CUDA, or
    with autograd on, the capturing wrapper is the UNet itself; Imagic copies the plain UNet under it."""
    from editing.fastpath import _CapturedUNet

    with pytest.raises(ValueError, match="graph_capture needs a CUDA device"):
        accelerate(tiny_latent_sd, graph_capture=True)
    wrapped = _CapturedUNet(tiny_latent_sd.unet)
    x, t, cond = _inputs(tiny_latent_sd)
    with torch.no_grad():
        torch.testing.assert_close(wrapped(x, t, encoder_hidden_states=cond).sample,
                                   tiny_latent_sd.unet(x, t, encoder_hidden_states=cond).sample)  # fmt: skip
    assert not wrapped._graphs and plain_unet(wrapped) is tiny_latent_sd.unet
    assert wrapped.config is tiny_latent_sd.unet.config  # attributes fall through
    sig = wrapped._signature({"sample": x, "timestep": t, "encoder_hidden_states": cond, "flag": None})
    assert sig == wrapped._signature({"sample": x.clone(), "timestep": t + 1, "encoder_hidden_states": cond, "flag": None})
    assert sig != wrapped._signature({"sample": x[:1], "timestep": t, "encoder_hidden_states": cond, "flag": None})
    assert sig != wrapped._signature({"sample": x.to(memory_format=torch.channels_last), "timestep": t,
                                      "encoder_hidden_states": cond, "flag": None})  # fmt: skip
    assert wrapped._signature({"sample": x, "timestep": t, "extra": [1]}) is None  # unkeyable: eager


def test_benchmarks_warn_when_the_machine_is_busy():
    """A 2-core run under load 5 once published previews as free and a batch as 9.5x slower, with no word."""
    from benchmarks.common import busy_warning

    assert busy_warning({"loadavg_start": "5.1 4.0 3.2 3/200 99", "cpu_count": 2}).startswith("load 5.1 on 2 cores")
    assert busy_warning({"loadavg_start": "1.2 1.0 0.9 1/200 99", "cpu_count": 2}) == ""
    assert busy_warning({"loadavg_start": "n/a", "cpu_count": 2}) == ""
