"""docs/python.md runs: every ```python block, section by section (each `## ` section in a fresh namespace and an
empty working directory, its blocks in order), as a reader pasting them into a notebook would."""

import contextlib
import io
import os
import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "python.md"
# Loads the teacher model and its tokenizer and walks a corpus: about 30 s on the shared 2-core machine.
SLOW = {"Compressing a model"}


def sections(text: str) -> dict[str, list[str]]:
    """Section title -> its python code blocks, in order (text before the first `## ` has none)."""
    out: dict[str, list[str]] = {}
    for part in re.split(r"^## ", text, flags=re.MULTILINE)[1:]:
        title, _, body = part.partition("\n")
        out[title.strip()] = re.findall(r"^```python\n(.*?)^```", body, flags=re.MULTILINE | re.DOTALL)
    return out


SECTIONS = sections(DOC.read_text())


def test_the_page_has_an_example_per_use():
    assert list(SECTIONS) == ["A formula from data", "Jobs: run, read the front, emit, resume", "A float32 function",
                              "Compressing a model", "A megakernel schedule"]
    assert all(SECTIONS.values())


@pytest.mark.parametrize("title", [pytest.param(t, marks=pytest.mark.slow) if t in SLOW else t for t in SECTIONS])
def test_section_runs(title, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EVOFORGE_CACHE", str(tmp_path / "cache"))
    namespace: dict = {"__name__": "__doc_example__"}
    printed = io.StringIO()
    for i, block in enumerate(SECTIONS[title]):
        with contextlib.redirect_stdout(printed):
            exec(compile(block, f"{DOC.name}[{title}, block {i}]", "exec"), namespace)
    assert printed.getvalue().strip(), "an example that prints nothing shows the reader nothing"
    assert os.getcwd() == str(tmp_path)
