#!/usr/bin/env bash
# Everything a session lent a GPU needs on this machine before its first device call, in one go
# (CPU only; needs the package registries). The GPU machine has no network and starts bare, so it
# gets what this writes, carried with the call (the device README's `carry`):
#
#   .whl/     diffusers, transformers, peft, importlib_metadata and regex wheels for Python 3.12
#             (the GPU image has torch and the rest): carry [".whl"] for benchmarks/run_gpu.sh
#   .gpukit/  the 64 px emoji corpus as WebP, every caption's pooled MiniLM encoding (int8) and the
#             two wheels training needs: carry [".gpukit"] for `python3 -m training.gpu_kit`
#
# The corpus is built once into .cache/corpus (skipped when there). What to run on the GPU
# machine, call by call, is in assets/models/emoji/README.md ("The kit") and benchmarks/README.md.
#
#   bash scripts/prepare_gpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -f .cache/corpus/emoji64.npz ]; then
  python -m training.corpus --out .cache/corpus --size 64
fi

# The wheels the GPU image lacks, for its Python (3.12) and platform: diffusers, transformers and
# peft at this project's pins (requirements.txt), so both machines run the same code, and two of
# their dependencies the image lacks (benchmarks/README.md, "Running on the lent GPU machine").
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl \
  diffusers==0.42.1 transformers==5.23.0 peft==0.21.2 importlib_metadata==10.2.0 regex==2026.5.9

python -m training.gpu_kit pack --corpus .cache/corpus/emoji64.npz --out .gpukit

# what a call carrying .gpukit holds once the docs' figures and the shipped weights are set aside
# (at most 64 MiB; training on the GPU needs neither)
python - <<'PY'
import os, subprocess
files = [f for f in subprocess.run(["git", "ls-files", "-z"], capture_output=True, check=True).stdout.decode().split("\0") if f]
aside = lambda f: (f.startswith("docs/") and f.endswith(".png")) or (f.startswith("assets/models/") and f.endswith(".safetensors"))
tree = sum(os.path.getsize(f) for f in files if os.path.isfile(f) and not aside(f))
kit = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(".gpukit") for f in fs)
mib = (tree + kit) / 2**20
print(f"\na call carrying .gpukit, docs' figures and shipped weights set aside: {mib:.1f} MiB of 64" + ("" if mib <= 64 else " -- TOO BIG: trim the tree or the kit"))
PY

cat <<'EOF'

Ready. A device call carries at most 64 MiB with the tracked tree: before the calls that carry
.gpukit, set the docs' figures and the shipped weights aside (deleted files do not travel; training
needs neither) and restore them afterwards:
  git ls-files -z 'docs/*.png' 'assets/models/*.safetensors' | xargs -0 rm      # before
  git checkout -- docs assets                                                    # after
Start with `status` (free), then see assets/models/emoji/README.md, "The kit", for the calls.
EOF
