"""The README's Python examples run as written (so the quick tour never rots)."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_python_examples():
    assert len(_blocks()) >= 2


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(_blocks())))
def test_readme_example_runs(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # files an example writes land in a temporary folder
    exec(compile(_blocks()[index], f"README.md[python block {index}]", "exec"), {})
