"""The fast path: speed-ups for a loaded bundle, applied explicitly by app.py, the CLI and benchmarks.

Nothing here runs at import time, and nothing patches a library: `accelerate(bundle)` returns a
new bundle (via `bundle.replace(unet=...)`) whose networks are changed *copies*; the bundle passed
in keeps its own modules, bit for bit. The toggles, each kept on by default only where the
benchmarks showed it pays (benchmarks/README.md, "Fast path"):

- sdpa: every attention processor of the UNet (and VAE) is diffusers' `AttnProcessor2_0`
  (torch's fused `scaled_dot_product_attention`: flash / memory-efficient kernels on GPUs).
  diffusers 0.42 already makes it the default, so this is usually a no-op; it undoes a pipeline
  that switched a shared UNet to the classic `AttnProcessor` (LEdits++'s `invert` does).
- channels_last: UNet and VAE weights in NHWC, the layout cuDNN's tensor-core convolutions (and
  oneDNN on CPUs) prefer; activations follow the weights' layout.
- compile: `torch.compile` of the UNet (default mode, or the mode string given). The first calls
  at each new input shape compile (seconds to minutes): benchmarks report that time apart.
- cuda_graphs: compile with mode "reduce-overhead" (CUDA graphs through torch's cudagraph trees),
  which removes the per-kernel launch overhead that dominates small batches. Outputs are cloned
  out of the graph's memory pool so a later replay cannot overwrite an eps still in use.

Half precision is chosen at load time (`load_model(..., dtype=torch.float16)`), the guidance pair
is one UNet call by construction (`editing.samplers.cfg_denoiser`), previews are a linear
latent->RGB map (`LatentSDBundle.preview`), and sweeps are one batch (`editing.sweep`); those are
the rest of the fast path and need no toggle.
"""

from __future__ import annotations

import copy

import torch


class _GraphSafeUNet(torch.nn.Module):
    """A compiled UNet whose outputs are copied out of the CUDA-graph pool (reduce-overhead mode
    reuses output buffers on the next replay). Attribute access falls through to the UNet."""

    def __init__(self, compiled: torch.nn.Module):
        super().__init__()
        self.compiled = compiled

    def forward(self, *args, **kwargs):
        out = self.compiled(*args, **kwargs)
        return type(out)(sample=out.sample.clone()) if hasattr(out, "sample") else out.clone()

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["compiled"], name)


def _attention_layers(module: torch.nn.Module) -> list[torch.nn.Module]:
    """diffusers' attention layers (UNet2DModel has no `set_attn_processor`, so walk the modules)."""
    return [m for m in module.modules() if hasattr(m, "processor") and hasattr(m, "set_processor")]


def _uses_sdpa(module: torch.nn.Module) -> bool:
    from diffusers.models.attention_processor import AttnProcessor2_0

    return all(isinstance(m.processor, AttnProcessor2_0) for m in _attention_layers(module))


def _set_sdpa(module: torch.nn.Module) -> None:
    from diffusers.models.attention_processor import AttnProcessor2_0

    for m in _attention_layers(module):
        if not isinstance(m.processor, AttnProcessor2_0):
            m.set_processor(AttnProcessor2_0())


def _needs_copy(module: torch.nn.Module, channels_last: bool, sdpa: bool) -> bool:
    return channels_last or (sdpa and not _uses_sdpa(module))


def _prepare(module: torch.nn.Module, channels_last: bool, sdpa: bool) -> torch.nn.Module:
    """A copy of `module` with SDPA attention and NHWC weights (the original is left untouched)."""
    if not _needs_copy(module, channels_last, sdpa):
        return module
    module = copy.deepcopy(module)
    if sdpa:
        _set_sdpa(module)
    if channels_last:
        module = module.to(memory_format=torch.channels_last)
    return module


def accelerate(
    bundle,
    *,
    channels_last: bool = True,
    compile: bool | str = False,
    sdpa: bool = True,
    cuda_graphs: bool = False,
    compile_backend: str = "inductor",
):
    """A bundle that computes the same eps faster. `bundle` itself is not modified.

    compile: False, True (torch.compile's default mode) or a mode string such as
    "max-autotune-no-cudagraphs". cuda_graphs: compile with mode "reduce-overhead" (implies
    compile). compile_backend: torch.compile's backend ("inductor"; "eager" in tests).
    The returned bundle's `fastpath` dict records what was applied (for recipes and benchmarks).
    """
    unet = _prepare(bundle.unet, channels_last, sdpa)
    mode = None
    if cuda_graphs:
        mode = "reduce-overhead"
    elif isinstance(compile, str):
        mode = compile
    if compile or cuda_graphs:
        compiled = torch.compile(unet, mode=mode, backend=compile_backend, fullgraph=False)
        unet = _GraphSafeUNet(compiled) if cuda_graphs else compiled
    new = bundle.replace(unet=unet)
    vae = getattr(bundle, "vae", None)
    if isinstance(vae, torch.nn.Module):  # latent models: the VAE is the other conv-heavy network
        new.vae = _prepare(vae, channels_last, sdpa)
    new.fastpath = {
        "channels_last": channels_last,
        "sdpa": sdpa,
        "compile": (mode or "default") if (compile or cuda_graphs) else False,
        "cuda_graphs": cuda_graphs,
        "compile_backend": compile_backend if (compile or cuda_graphs) else None,
    }
    return new


def plain_unet(unet: torch.nn.Module) -> torch.nn.Module:
    """The eager module under a compiled / graph-safe wrapper (what Imagic should fine-tune a copy of)."""
    if isinstance(unet, _GraphSafeUNet):
        unet = unet._modules["compiled"]
    return getattr(unet, "_orig_mod", unet)
