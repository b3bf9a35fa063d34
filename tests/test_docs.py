"""The README's Python API example runs as written (with fewer steps), so the docs cannot drift from the API."""

import re
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _block(heading: str) -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index(f"\n## {heading}\n") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_python_api_example_runs_and_uses_the_models_own_defaults(monkeypatch, capsys):
    code = _block("Python API")
    assert code.count("steps=50") == 2
    monkeypatch.chdir(ROOT)
    scope: dict = {}
    exec(compile(code.replace("steps=50", "steps=6"), "README.md (Python API)", "exec"), scope)
    assert scope["image"].shape == scope["guide"].shape and scope["image"].dtype == np.uint8
    info = scope["model"].info()
    assert scope["config"].guidance_scale == info.recommended_guidance_scale
    assert scope["edit_config"].guidance_scale == info.recommended_edit_guidance_scale
    assert capsys.readouterr().out.strip().splitlines()[-1].endswith("done")
