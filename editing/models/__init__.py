"""`load_model`: a preset name, a local diffusers folder or a hub id -> a ModelBundle.

Families (one module each): pixel-text (the project's emoji model), pixel-ddpm (unconditional
DDPMs), ve (NCSN++ score models), latent-sd (Stable Diffusion 1.x/2.x). The family of a folder is
read from its files: `stroke_studio.json` -> pixel-text; otherwise `model_index.json`'s
`_class_name` (DDPMPipeline/DDIMPipeline -> pixel-ddpm, ScoreSdeVePipeline -> ve,
StableDiffusion*Pipeline -> latent-sd).

Failures a user can fix raise `ModelNotFoundError` (a FileNotFoundError) whose message is one
sentence saying what is missing and how to get it; the CLI prints `str(error)`. A folder of an
unknown format raises ValueError. Nothing is printed here (huggingface_hub may show its own
download progress bars when it really downloads).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import torch

from editing.models.base import ModelBundle, pixels_to_tensor, tensor_to_pixels
from editing.models.common import DiffusersBundle, component_dir, read_json

REPO_ROOT = Path(__file__).resolve().parents[2]
EMOJI_DIR = REPO_ROOT / "assets" / "models" / "emoji"
LOCAL_MODELS_DIR = REPO_ROOT / "models"  # where the error messages tell users to put downloads

# Preset name -> hub id (None: ships with the repository).
PRESETS: dict[str, str | None] = {
    "emoji": None,
    "sd15": "stable-diffusion-v1-5/stable-diffusion-v1-5",
    "sd21-base": "stabilityai/stable-diffusion-2-1-base",
    "church": "google/ddpm-ema-church-256",
    "bedroom": "google/ddpm-ema-bedroom-256",
    "celebahq": "google/ddpm-ema-celebahq-256",
    "ncsnpp-celebahq": "google/ncsnpp-celebahq-256",
}

_FAMILY_MODULES = {
    "pixel-text": ("editing.models.pixel_text", "PixelTextBundle"),
    "pixel-ddpm": ("editing.models.pixel_ddpm", "PixelDDPMBundle"),
    "ve": ("editing.models.ve", "VEBundle"),
    "latent-sd": ("editing.models.latent_sd", "LatentSDBundle"),
}
# Weight-bearing subfolders each family needs (checked before loading, for a clear error).
_REQUIRED = {
    "pixel-text": ("unet", "scheduler"),
    "pixel-ddpm": ("unet", "scheduler"),
    "ve": ("unet", "scheduler"),
    "latent-sd": ("unet", "scheduler", "vae", "text_encoder", "tokenizer"),
}
_FLAT_OK = ("unet", "scheduler")  # components early diffusers repos keep at the root
_WEIGHT_PARTS = ("unet", "vae", "text_encoder")  # the components load_model downloads weights for
_WEIGHT_SUFFIXES = (".safetensors", ".bin")
_CONFIG_PATTERNS = ["*.json", "*.txt"]
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class ModelNotFoundError(FileNotFoundError):
    """A model that is not on this machine (or incomplete); the message says how to get it."""


def load_model(
    name_or_path: str | Path, device: str | torch.device | None = None, dtype: torch.dtype | None = None
) -> ModelBundle:
    """Load a model bundle. device None -> "cuda" if available else "cpu"; dtype None -> float16
    on cuda, float32 otherwise; a name ("float16") will do. A device this machine does not have, or
    a folder whose files are damaged, is an error in one sentence."""
    device = check_device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
    if dtype is None:
        dtype = torch.float16 if device.type == "cuda" else torch.float32
    dtype = check_dtype(dtype)
    folder = resolve_model(name_or_path)
    family = detect_family(folder)
    _check_complete(folder, family, str(name_or_path))
    import importlib

    module, cls_name = _FAMILY_MODULES[family]
    cls = getattr(importlib.import_module(module), cls_name)
    name = str(name_or_path)
    # A name resolved as a local folder is recorded by its absolute path (resolve_model returns that
    # path), so a recipe naming it replays from any folder; preset names and hub ids stay as given.
    model_id = str(folder) if folder == Path(name).expanduser().resolve() else name
    try:
        bundle = cls.from_folder(folder, model_id=model_id, weights_hash=hash_weights(folder), device=device, dtype=dtype)
        bundle.config_hash = hash_configs(folder)
        return bundle
    except (torch.OutOfMemoryError, ModelNotFoundError):
        raise
    except (OSError, RuntimeError) as e:  # a truncated or mismatched weight file, a damaged config
        why = (str(e).strip().splitlines() or [type(e).__name__])[0][:300].rstrip(". ")
        raise ModelNotFoundError(
            f"The model folder '{folder}' could not be loaded, its files are damaged or do not match ({why}): "
            "download the whole model again."
        ) from None


_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def check_dtype(dtype: torch.dtype | str) -> torch.dtype:
    """torch.float32/float16/bfloat16, or their names; anything else is a ValueError in one sentence."""
    if isinstance(dtype, str) and dtype.removeprefix("torch.") in _DTYPES:
        return _DTYPES[dtype.removeprefix("torch.")]
    if dtype in _DTYPES.values():
        return dtype
    raise ValueError(f"dtype {dtype!r} is not supported: use float32, float16 or bfloat16 (a torch.dtype or its name).")


def check_device(device: str | torch.device) -> torch.device:
    """torch.device(device), or ValueError in one sentence where it names no device or one this
    machine does not have (torch's own errors are an AssertionError deep in its CUDA set-up)."""
    name = str(device)
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device {name!r} is not a torch device: use cpu, cuda, cuda:N or mps.") from None
    missing = None
    if dev.type == "cuda" and not torch.cuda.is_available():
        missing = "this torch was built without CUDA" if torch.version.cuda is None else "torch sees no CUDA GPU"
        missing += f" (torch {torch.__version__})"
    elif dev.type == "cuda" and dev.index is not None and dev.index >= (n := torch.cuda.device_count()):
        raise ValueError(f"device {name!r}: only {n} CUDA device(s) are visible, cuda:0 to cuda:{n - 1}.")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        missing = "this machine or torch build has no MPS"
    if missing:
        raise ValueError(f"device {name!r}: {missing}; run on the CPU instead (--device cpu).")
    return dev


def resolve_model(name_or_path: str | Path) -> Path:
    """The local folder for a preset name, a folder path or a hub id (downloading if needed)."""
    name = str(name_or_path)
    if name == "emoji":
        if not (EMOJI_DIR / "unet").is_dir():
            raise ModelNotFoundError(
                f"The embedded emoji model is missing from '{EMOJI_DIR}': it ships with the repository, so restore that "
                "folder from git or retrain it with `python -m training.train_diffusion`."
            )
        return EMOJI_DIR
    if name in PRESETS:
        local = LOCAL_MODELS_DIR / name
        return local if local.is_dir() else _from_hub(PRESETS[name], label=name)
    path = Path(name).expanduser()
    if path.is_dir():
        return path.resolve()
    if path.exists():
        raise ValueError(
            f"'{name}' is a file; load_model needs a diffusers model folder (single-file checkpoints are not supported)."
        )
    looks_like_path = (
        name.startswith((".", "/", "~")) or "\\" in name or not _HUB_ID.match(name) or Path(name.split("/")[0]).is_dir()
    )
    preset = path.name if PRESETS.get(path.name) else None
    if preset and (looks_like_path or path.parts[0] == LOCAL_MODELS_DIR.name):  # a preset's download folder, not there yet
        raise ModelNotFoundError(
            f"No model folder at '{name}': download the {preset} preset there on a machine with network "
            f"(hf download {PRESETS[preset]} --local-dir {name}), or pass --model {preset}."
        )
    if looks_like_path:
        presets = ", ".join(PRESETS)
        raise ModelNotFoundError(
            f"No model folder at '{name}': pass an existing diffusers model folder, a hub id (owner/name) or a preset ({presets})."
        )
    return _from_hub(name, label=name)


def _from_hub(repo_id: str, label: str) -> Path:
    """snapshot_download the files a bundle needs; offline or unreachable -> the local cache."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    try:
        return _download(repo_id)
    except Exception as exc:  # no network, hub down, offline mode...: fall back to the cache
        online_error = exc
    try:
        # Only configs are checked for completeness here (weights: _check_complete, with a clearer message).
        return Path(snapshot_download(repo_id, local_files_only=True, allow_patterns=_CONFIG_PATTERNS))
    except Exception:
        pass
    shown = f"'{label}' ({repo_id})" if label != repo_id else f"'{repo_id}'"
    local = f"models/{label.split('/')[-1]}"
    get = f"hf download {repo_id} --local-dir {local}"  # the CLI of huggingface_hub >= 1.0
    if isinstance(online_error, GatedRepoError):
        msg = (
            f"Model {shown} is gated on the Hugging Face Hub: accept its licence on https://huggingface.co/{repo_id}, "
            f"run `hf auth login`, then `{get}` and pass --model {local}."
        )
    elif isinstance(online_error, RepositoryNotFoundError):
        msg = (
            f"Model {shown} was not found on the Hugging Face Hub (it does not exist, or is private and you are not logged in "
            "with `hf auth login`) and is not on this machine: check the name, or pass a local diffusers model folder."
        )
    else:
        msg = (
            f"Model {shown} is not on this machine and the hub cannot be reached: download it on a machine with network "
            f"({get}) and pass --model {local}."
        )
    raise ModelNotFoundError(msg) from None


def _download(repo_id: str) -> Path:
    """Configs first, then the needed components' weights: safetensors where the repo has them, else .bin.

    Skips what no bundle reads (safety checker, fp16/non-EMA variants, single-file checkpoints).
    """
    from huggingface_hub import snapshot_download

    skip = ["*.fp16.*", "*.non_ema.*", "*.ckpt", "*.msgpack", "*.onnx", "*.h5", "*.pb"]
    root = Path(snapshot_download(repo_id, allow_patterns=_CONFIG_PATTERNS))
    if (root / "model_index.json").is_file():
        parts = [p for p in read_json(root / "model_index.json") if p in _WEIGHT_PARTS]
    else:
        parts = ["unet"]

    def patterns(suffix: str, names: list[str]) -> list[str]:
        # a component's subfolder, or the root for flat repos (google/ddpm-ema-*, google/ncsnpp-*)
        return [f"{p}/*{suffix}" if (root / p).is_dir() else f"diffusion_pytorch_model{suffix}" for p in names]

    snapshot_download(repo_id, allow_patterns=patterns(".safetensors", parts), ignore_patterns=skip)
    missing = [p for p in parts if not _weights(component_dir(root, p))]
    if missing:
        snapshot_download(repo_id, allow_patterns=patterns(".bin", missing), ignore_patterns=skip)
    return root


def detect_family(folder: Path) -> str:
    """The bundle family of a local model folder (ValueError for unknown formats)."""
    folder = Path(folder)
    if (folder / "stroke_studio.json").is_file():
        family = read_json(folder / "stroke_studio.json").get("family", "pixel-text")
        if family != "pixel-text":
            raise ValueError(f"{folder / 'stroke_studio.json'}: unknown family {family!r}; allowed: 'pixel-text'")
        return family
    index = folder / "model_index.json"
    if not index.is_file():
        raise ValueError(
            f"'{folder}' is not a model folder Stroke Studio knows: it has neither stroke_studio.json nor a diffusers model_index.json."
        )
    cls = str(read_json(index).get("_class_name", ""))
    if cls in ("DDPMPipeline", "DDIMPipeline"):
        return "pixel-ddpm"
    if cls == "ScoreSdeVePipeline":
        return "ve"
    if cls.startswith("StableDiffusion") and not cls.startswith(("StableDiffusionXL", "StableDiffusion3")):
        return "latent-sd"
    raise ValueError(
        f"'{folder}' holds a diffusers {cls or 'unknown'} model, which Stroke Studio does not support; supported: "
        "DDPMPipeline/DDIMPipeline, ScoreSdeVePipeline and StableDiffusion 1.x/2.x pipelines, or a stroke_studio.json folder."
    )


def _check_complete(folder: Path, family: str, label: str) -> None:
    for part in _REQUIRED[family]:
        where = component_dir(folder, part)  # flat repos keep unet and scheduler at the root
        config = {"scheduler": "scheduler_config.json", "tokenizer": None}.get(part, "config.json")
        if where == folder and (part not in _FLAT_OK or not (folder / config).is_file()):
            missing = f"{part}/"
        elif part not in ("scheduler", "tokenizer") and not _weights(where):
            missing = f"{part} weights"
        else:
            continue
        named = "" if Path(label).expanduser().resolve() == Path(folder).resolve() else f" for '{label}'"
        raise ModelNotFoundError(
            f"The model folder '{folder}'{named} is incomplete ({missing} missing): download the whole model again."
        )


def _weights(folder: Path) -> list[Path]:
    return [p for p in Path(folder).rglob("*") if p.suffix in _WEIGHT_SUFFIXES and p.is_file()]


def hash_configs(folder: Path) -> str:
    """A fingerprint of a folder's JSON configs (model_index, each part's config, the scheduler's,
    stroke_studio.json; tokenizer files aside), first 16 hex digits of sha256: two folders with the
    same weights but another prediction type or schedule sample differently, which weights_hash
    alone does not tell."""
    folder = Path(folder)
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*.json"), key=lambda p: p.relative_to(folder).as_posix()):
        rel = p.relative_to(folder).as_posix()
        if rel.startswith("tokenizer") or p.name.endswith(".index.json"):
            continue
        h.update(rel.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def hash_weights(folder: Path, sample: int = 1 << 20) -> str:
    """A fingerprint of a folder's weight files (*.safetensors, *.bin), first 16 hex digits of sha256.

    Hashes each file's relative path, size, and its first and last `sample` bytes (1 MiB), not the
    whole content: hashing a multi-GB Stable Diffusion folder would take longer than loading it.
    Files up to 2 MiB (the tiny test models) are hashed entirely; a fine-tune rewrites every
    tensor, so it changes the sampled bytes too.
    """
    folder = Path(folder)
    h = hashlib.sha256()
    for p in sorted(_weights(folder), key=lambda p: p.relative_to(folder).as_posix()):
        size = p.stat().st_size
        h.update(p.relative_to(folder).as_posix().encode())
        h.update(str(size).encode())
        with open(p, "rb") as f:
            if size <= 2 * sample:
                h.update(f.read())
            else:
                h.update(f.read(sample))
                f.seek(size - sample)
                h.update(f.read(sample))
    return h.hexdigest()[:16]


__all__ = [
    "PRESETS",
    "DiffusersBundle",
    "ModelBundle",
    "ModelNotFoundError",
    "detect_family",
    "hash_weights",
    "load_model",
    "pixels_to_tensor",
    "resolve_model",
    "tensor_to_pixels",
]
