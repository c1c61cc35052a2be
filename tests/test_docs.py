"""Every Python code block in README.md and docs/ runs as written (issue 18).

A page is a narrative: its blocks run in order in one namespace, in a fresh working folder, with
the data root of the tests. Pages whose blocks take long (real data sets, training) are marked
slow and run with ``pytest -m slow``; the rest run by default. Shell blocks are checked for the
commands they name (``neurodyn SUBCOMMAND`` must exist), not run: the CLI has its own tests.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import matplotlib
import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
#: Pages whose blocks need minutes (sweeps on a local Dask cluster).
SLOW = {"sweeps.md"}
#: Pages that read the real data under NEURODYN_DATA (skipped, as the data tests are, without it).
NEEDS_DATA = {"README.md", "codecs.md"}


def blocks(page: Path, language: str) -> list[str]:
    return [body for lang, body in BLOCK.findall(page.read_text()) if lang == language]


def _page_params() -> list:
    params = []
    for page in PAGES:
        if blocks(page, "python"):
            marks = [pytest.mark.slow] if page.name in SLOW else []
            params.append(pytest.param(page, id=page.name, marks=marks))
    return params


@pytest.mark.parametrize("page", _page_params())
def test_the_python_blocks_of_a_page_run_in_order(page: Path, tmp_path: Path, monkeypatch) -> None:
    if page.name in NEEDS_DATA and not os.environ.get("NEURODYN_DATA"):
        pytest.skip("NEURODYN_DATA is not set: point it at the shared data folder to run this page's blocks")
    monkeypatch.chdir(tmp_path)
    matplotlib.use("Agg")
    namespace: dict = {"__name__": "__docs__"}
    for number, code in enumerate(blocks(page, "python")):
        try:
            exec(compile(code, f"{page.name}, block {number}", "exec"), namespace)
        except Exception as err:
            raise AssertionError(f"{page.name}, Python block {number} fails: {type(err).__name__}: {err}\n{code}") \
                from err
    import matplotlib.pyplot as plt

    plt.close("all")


def test_shell_blocks_name_commands_that_exist() -> None:
    from neurodyn.cli import build_parser

    commands = set(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    for page in PAGES:
        for code in blocks(page, "bash"):
            for line in code.splitlines():
                words = line.strip().lstrip("$ ").split()
                if len(words) > 1 and words[0] == "neurodyn" and not words[1].startswith("-"):
                    assert words[1] in commands, f"{page.name}: {line.strip()!r} names no neurodyn command"
