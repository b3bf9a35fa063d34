#!/usr/bin/env bash
# Install what the tests need and run them (the README's test command).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q -r requirements.txt -r requirements-dev.txt
python -m ruff check .
python -m pytest "$@"
