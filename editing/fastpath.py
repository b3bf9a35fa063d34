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
- graph_capture: CUDA graphs captured directly (`torch.cuda.CUDAGraph`, no compilation): the
  UNet's kernels are recorded once per input signature and replayed, so a small batch no longer
  pays a launch per kernel, and the first call costs a capture (well under a second), not a compile.
- fuse_qkv: diffusers' `fuse_qkv_projections()` on the copies: one matmul for query, key and
  value in self-attention (key and value in cross-attention) instead of three.
- inductor_options: inductor settings for the compilation, e.g. `DIFFUSERS_RECIPE`, the flags of
  diffusers' "Accelerate inference of text-to-image diffusion models" tutorial (1x1 convolutions
  as matrix products, coordinate-descent tuning, no epilogue fusion).
- compile_vae: `torch.compile` of the VAE's encode and decode too (latent models), with the same
  settings: the VAE is a large share of an SDEdit at t0 0.5 (two passes at 512 px against 25
  guided UNet calls).

Half precision is chosen at load time (`load_model(..., dtype=torch.float16)`), the guidance pair
is one UNet call by construction (`editing.samplers.cfg_denoiser`), previews are a linear
latent->RGB map (`LatentSDBundle.preview`), and sweeps are one batch (`editing.sweep`); those are
the rest of the fast path and need no toggle.
"""

from __future__ import annotations

import copy

import torch

# the inductor flags of diffusers' tutorial "Accelerate inference of text-to-image diffusion
# models" (its recipe compiles with these and max-autotune; add "max_autotune": True for that,
# which tunes for minutes at each new shape)
DIFFUSERS_RECIPE = {
    "conv_1x1_as_mm": True,
    "coordinate_descent_tuning": True,
    "coordinate_descent_check_all_directions": True,
    "epilogue_fusion": False,
}


class _Wrapper(torch.nn.Module):
    """A module around the UNet (registered as `inner`) whose attribute access falls through to it."""

    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner = inner

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["inner"], name)


class _GraphSafeUNet(_Wrapper):
    """A compiled UNet whose outputs are copied out of the CUDA-graph pool (reduce-overhead mode
    reuses output buffers on the next replay)."""

    def forward(self, *args, **kwargs):
        out = self.inner(*args, **kwargs)
        return type(out)(sample=out.sample.clone()) if hasattr(out, "sample") else out.clone()


class _CapturedUNet(_Wrapper):
    """The UNet replayed from CUDA graphs captured per input signature (shapes, dtypes, strides and
    the non-tensor arguments). A call copies its tensors into the graph's static inputs, replays the
    recorded kernels on the current stream and clones the output out of the graph pool. Eager, as
    the UNet itself, when autograd is on (Imagic's optimisation), off CUDA, or past `max_graphs`
    signatures (a sweep's changing batch sizes).

    The graphs share one memory pool: safe because replays run one at a time on one stream and every
    graph's static inputs and output stay referenced here."""

    def __init__(self, unet: torch.nn.Module, max_graphs: int = 8):
        super().__init__(unet)
        self.max_graphs = max_graphs
        self._graphs: dict = {}  # signature -> (graph, static tensors by argument name, static output, output type)
        self._pool = None

    @staticmethod
    def _signature(args: dict):
        key = []
        for name, v in args.items():
            if isinstance(v, torch.Tensor):
                key.append((name, tuple(v.shape), v.dtype, v.stride(), str(v.device)))
            elif v is None or isinstance(v, (bool, int, float, str)):
                key.append((name, v))
            else:
                return None  # something a graph cannot key on: run eagerly
        return tuple(key)

    def _capture(self, args: dict):
        static = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in args.items()}
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up outside the capture (cuBLAS/cuDNN workspaces, lazy inits)
            for _ in range(2):
                out = self.inner(**static)
        torch.cuda.current_stream().wait_stream(side)
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._pool):
            static_out = self.inner(**static)
        sample = static_out.sample if hasattr(static_out, "sample") else static_out
        return graph, {k: v for k, v in static.items() if isinstance(v, torch.Tensor)}, sample, type(out)

    def forward(self, sample, timestep, **kwargs):
        if torch.is_grad_enabled() or not sample.is_cuda or torch.cuda.is_current_stream_capturing():
            return self.inner(sample, timestep, **kwargs)
        if not isinstance(timestep, torch.Tensor):  # a graph input, not a constant baked into it
            timestep = torch.full((), float(timestep), device=sample.device)
        args = {"sample": sample, "timestep": timestep, **kwargs}
        key = self._signature(args)
        entry = self._graphs.get(key) if key is not None else None
        if entry is None:
            if key is None or len(self._graphs) >= self.max_graphs:
                return self.inner(sample, timestep, **kwargs)
            entry = self._graphs[key] = self._capture(args)
        graph, static, out, out_type = entry
        for name, tensor in static.items():
            tensor.copy_(args[name])
        graph.replay()
        return out_type(sample=out.clone()) if out_type is not torch.Tensor else out.clone()


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


def _needs_copy(module: torch.nn.Module, channels_last: bool, sdpa: bool, fuse_qkv: bool = False) -> bool:
    return channels_last or fuse_qkv or (sdpa and not _uses_sdpa(module))


def _prepare(module: torch.nn.Module, channels_last: bool, sdpa: bool, fuse_qkv: bool = False,
             force_copy: bool = False) -> torch.nn.Module:  # fmt: skip
    """A copy of `module` with SDPA attention, fused projections and NHWC weights (the original is
    left untouched)."""
    if not (force_copy or _needs_copy(module, channels_last, sdpa, fuse_qkv)):
        return module
    module = copy.deepcopy(module)
    if sdpa:
        _set_sdpa(module)
    if fuse_qkv:
        if not hasattr(module, "fuse_qkv_projections"):
            raise ValueError(f"fuse_qkv: {type(module).__name__} has no fuse_qkv_projections()")
        module.fuse_qkv_projections()  # after SDPA: it sets diffusers' fused SDPA processor
    if channels_last:
        module = module.to(memory_format=torch.channels_last)
    return module


def _compile(fn, mode: str | None, options: dict | None, backend: str):
    """torch.compile with a mode or inductor options (torch takes one or the other)."""
    if options and backend == "inductor":
        return torch.compile(fn, options=options, backend=backend, fullgraph=False)
    return torch.compile(fn, mode=mode, backend=backend, fullgraph=False)


def accelerate(
    bundle,
    *,
    channels_last: bool = True,
    compile: bool | str = False,
    sdpa: bool = True,
    cuda_graphs: bool = False,
    compile_backend: str = "inductor",
    fuse_qkv: bool = False,
    inductor_options: dict | None = None,
    compile_vae: bool = False,
    graph_capture: bool = False,
):
    """A bundle that computes the same eps faster. `bundle` itself is not modified.

    compile: False, True (torch.compile's default mode) or a mode string such as
    "max-autotune-no-cudagraphs". cuda_graphs: compile with mode "reduce-overhead" (implies
    compile). compile_backend: torch.compile's backend ("inductor"; "eager" in tests).
    fuse_qkv: fused attention projections (UNet and VAE). inductor_options: inductor settings
    instead of a mode (`DIFFUSERS_RECIPE`; with cuda_graphs, "triton.cudagraphs" is added);
    implies compile. compile_vae: compile the VAE's encode and decode as well. graph_capture: the
    UNet replayed from CUDA graphs captured without compiling (CUDA only; not with compile).
    The returned bundle's `fastpath` dict records what was applied (for recipes and benchmarks).
    """
    if graph_capture:
        if torch.device(bundle.device).type != "cuda":
            raise ValueError(f"graph_capture needs a CUDA device; the model is on {bundle.device}")
        if compile or cuda_graphs or inductor_options:
            raise ValueError("graph_capture records the eager UNet: use it without compile, cuda_graphs or inductor_options")
    unet = _prepare(bundle.unet, channels_last, sdpa, fuse_qkv, force_copy=graph_capture)
    if graph_capture:
        unet = _CapturedUNet(unet)
    base_mode = compile if isinstance(compile, str) else None  # the VAE's (no CUDA graphs: two calls an edit)
    mode = "reduce-overhead" if cuda_graphs else base_mode
    compile = bool(compile or cuda_graphs or inductor_options)
    options = {**inductor_options, **({"triton.cudagraphs": True} if cuda_graphs else {})} if inductor_options else None
    if compile:
        compiled = _compile(unet, mode, options, compile_backend)
        unet = _GraphSafeUNet(compiled) if cuda_graphs else compiled
    new = bundle.replace(unet=unet)
    vae = getattr(bundle, "vae", None)
    if isinstance(vae, torch.nn.Module):  # latent models: the VAE is the other conv-heavy network
        new.vae = _prepare(vae, channels_last, sdpa, fuse_qkv, force_copy=compile_vae)
        if compile_vae:  # the copy's own bound methods, compiled
            new.vae.encode = _compile(new.vae.encode, base_mode, inductor_options, compile_backend)
            new.vae.decode = _compile(new.vae.decode, base_mode, inductor_options, compile_backend)
    new.fastpath = {
        "channels_last": channels_last,
        "sdpa": sdpa,
        "fuse_qkv": fuse_qkv,
        "compile": ("options" if options else (mode or "default")) if compile else False,
        "inductor_options": options,
        "cuda_graphs": cuda_graphs,
        "compile_vae": compile_vae and isinstance(vae, torch.nn.Module),
        "compile_backend": compile_backend if (compile or compile_vae) else None,
        "graph_capture": graph_capture,
    }
    return new


def plain_unet(unet: torch.nn.Module) -> torch.nn.Module:
    """The eager module under a compiled / graph-safe wrapper (what Imagic should fine-tune a copy of)."""
    if isinstance(unet, _Wrapper):
        unet = unet._modules["inner"]
    return getattr(unet, "_orig_mod", unet)
