"""What the benchmarks share: timing (CUDA events or perf_counter), interleaved ours/peer repeats,
peak memory, UNet call counting, the environment record, results files and markdown tables.

Rules every benchmark here follows (benchmarks/README.md):
- ours and the peer run in ONE process on the same components and inputs, alternating
  (ours, peer, ours, peer, ...) after a warm-up of each, so drift (clocks, other load) hits both;
- each figure is the median of the repeats, with min and max kept in the JSON;
- every results file records the device, date, library versions, /proc/loadavg and the command.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
CONFIGS = Path(__file__).resolve().parent / "configs"
# BENCH_RESULTS (run_gpu.sh sets it to the device call's $OUT): results are written there directly,
# so that a call stopped at its time limit still brings back what it wrote
RESULTS = Path(os.environ.get("BENCH_RESULTS") or Path(__file__).resolve().parent / "results")
TINY_CLIP = REPO / "tests" / "fixtures" / "tiny_clip"  # a 570-token byte-level BPE vocab: timing needs no real one


def sync(device: torch.device | str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any], device) -> tuple[float, Any]:
    """(seconds, fn()) with the device drained before and after (CUDA events on a GPU)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        out = fn()
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end) / 1000.0, out
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


@dataclass
class Stat:
    times: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    def as_dict(self) -> dict[str, Any]:
        return {"median_s": self.median, "min_s": min(self.times), "max_s": max(self.times), "n": len(self.times),
                "times_s": self.times}


def interleaved(fns: dict[str, Callable[[], Any]], device, repeats: int, warmup: int = 1) -> dict[str, Stat]:
    """Time each function `repeats` times, alternating between them, after `warmup` untimed runs each."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
            sync(device)
    stats = {name: Stat() for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            stats[name].times.append(timed(fn, device)[0])
    return stats


def peak_memory(fn: Callable[[], Any], device) -> dict[str, float] | None:
    """Peak memory (GiB) of one run on CUDA: absolute peak and the increase over what was resident."""
    device = torch.device(device)
    if device.type != "cuda":
        return None
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated()
    return {"peak_gib": peak / 2**30, "resident_gib": base / 2**30, "working_gib": (peak - base) / 2**30}


def module_gib(*modules: torch.nn.Module) -> float:
    seen, total = set(), 0
    for m in modules:
        for t in [*m.parameters(), *m.buffers()]:
            if t.data_ptr() not in seen:
                seen.add(t.data_ptr())
                total += t.numel() * t.element_size()
    return total / 2**30


class CallCounter:
    """Counts forward calls of a module and the rows (batch size) they carried."""

    def __init__(self, module: torch.nn.Module):
        self.calls = 0
        self.rows = 0
        self._handle = module.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, module, args, kwargs):
        x = args[0] if args else kwargs.get("sample")
        self.calls += 1
        self.rows += int(x.shape[0])

    def take(self) -> dict[str, int]:
        out = {"unet_calls": self.calls, "unet_rows": self.rows}
        self.calls = self.rows = 0
        return out

    def remove(self) -> None:
        self._handle.remove()


@contextmanager
def kept_attention(unet: torch.nn.Module):
    """Restore a UNet's attention processors after a pipeline that swaps them (LEdits++'s invert
    sets the classic AttnProcessor on the UNet it is given)."""
    procs = {name: m.processor for name, m in unet.named_modules() if hasattr(m, "set_processor")}
    try:
        yield
    finally:
        for name, m in unet.named_modules():
            if name in procs:
                m.set_processor(procs[name])


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return "n/a"


def busy_warning(env: dict[str, Any]) -> str:
    """A warning when the 1-minute load at the start already exceeds the cores (other jobs would
    take the benchmark's time; a 2-core run under load 5 once timed previews as free), else ""."""
    try:
        load, cores = float(str(env["loadavg_start"]).split()[0]), int(env["cpu_count"])
    except (KeyError, ValueError, IndexError):
        return ""
    return f"load {load} on {cores} cores: other jobs share the CPU, so the timings are unreliable" if load > cores else ""


def environment(device) -> dict[str, Any]:
    import diffusers
    import transformers

    try:
        import peft

        peft_version = peft.__version__
    except ImportError:
        peft_version = None
    device = torch.device(device)
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = ""
    env = {
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "device": device.type,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "peft": peft_version,
        "git_commit": commit,
        "loadavg_start": loadavg(),
        "command": " ".join(["python", *sys.argv]),
    }
    if device.type == "cuda":
        env["cuda"] = torch.version.cuda
        env["cudnn"] = torch.backends.cudnn.version()
    return env


def device_label(env: dict[str, Any]) -> str:
    name = env["device_name"] if env["device"] == "cuda" else f"cpu{env['cpu_count']}"
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name).strip("-").lower()


def write_results(prefix: str, env: dict[str, Any], results: dict[str, Any], path: Path | None = None) -> Path:
    """Write the results JSON; `path` (a previous call's return) rewrites that file, so a long run can
    save after each section and a run cut short keeps what it measured."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    env = {**env, "loadavg_end": loadavg()}
    if path is None:
        path = RESULTS / f"{prefix}{device_label(env)}-{env['date_utc'][:10]}.json"
        if path.exists():  # a second run the same day keeps the first (results are committed)
            path = path.with_name(f"{path.stem}-{env['date_utc'][11:19].replace(':', '')}.json")
    path.write_text(json.dumps({"environment": env, "results": results}, indent=2, default=float) + "\n")
    return path


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
        return "" if v is None else str(v)

    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000.0
