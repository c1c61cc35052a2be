"""Every Python code block in README.md and docs/ runs as written (issue 18).

A page is a narrative: its blocks run in order in one namespace, in a fresh working folder, with
the data root of the tests (every page takes seconds, so all run by default). Shell blocks are
checked for the commands they name (``neurodyn SUBCOMMAND`` must exist), not run: the CLI has
its own tests.
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
#: Pages that read the real data under NEURODYN_DATA (skipped, as the data tests are, without it).
NEEDS_DATA = {"README.md", "codecs.md"}


def blocks(page: Path, language: str) -> list[str]:
    return [body for lang, body in BLOCK.findall(page.read_text()) if lang == language]


def _page_params() -> list:
    params = []
    for page in PAGES:
        if blocks(page, "python"):
            params.append(pytest.param(page, id=page.name))
    return params


@pytest.mark.parametrize("page", _page_params())
def test_the_python_blocks_of_a_page_run_in_order(page: Path, tmp_path: Path, monkeypatch) -> None:
    if page.name in NEEDS_DATA and not os.environ.get("NEURODYN_DATA"):
        pytest.skip("NEURODYN_DATA is not set: point it at the shared data folder to run this page's blocks")
    monkeypatch.chdir(tmp_path)
    if page.name == "sweeps.md":  # its sharded script runs as under `torchrun --nproc_per_node 1`
        for name, value in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29517", "RANK": "0", "WORLD_SIZE": "1",
                            "LOCAL_RANK": "0"}.items():
            monkeypatch.setenv(name, value)
    matplotlib.use("Agg")
    namespace: dict = {"__name__": "__docs__"}
    for number, code in enumerate(blocks(page, "python")):
        try:
            exec(compile(code, f"{page.name}, block {number}", "exec"), namespace)
        except Exception as err:
            raise AssertionError(f"{page.name}, Python block {number} fails: {type(err).__name__}: {err}\n{code}") \
                from err
    import matplotlib.pyplot as plt
    import torch.distributed as dist

    plt.close("all")
    if dist.is_initialized():
        dist.destroy_process_group()


def test_shell_blocks_name_commands_that_exist() -> None:
    from neurodyn.cli import build_parser

    commands = set(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    for page in PAGES:
        for code in blocks(page, "bash"):
            for line in code.splitlines():
                words = line.strip().lstrip("$ ").split()
                if len(words) > 1 and words[0] == "neurodyn" and not words[1].startswith("-"):
                    assert words[1] in commands, f"{page.name}: {line.strip()!r} names no neurodyn command"
