"""The repository's own files: what git ignores after the README's commands,
and CI running the README's test command as a new user types it."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT, require


def git(folder: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(folder), *args], capture_output=True, text=True, check=True, timeout=60
    ).stdout


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """An empty git repository holding only this repository's .gitignore."""
    require(shutil.which("git") is not None, "git is not installed")
    git(tmp_path, "init", "-q")
    shutil.copy2(ROOT / ".gitignore", tmp_path / ".gitignore")
    return tmp_path


@pytest.mark.git
def test_git_ignores_the_venv_redirect_file_tox_writes(clone: Path) -> None:
    # tox 4 points a PEP 832 `.venv` file (not a folder) at one of its environments.
    (clone / ".venv").write_text(".tox/py311\n", encoding="utf-8")
    (clone / ".tox" / "py311").mkdir(parents=True)
    (clone / ".tox" / "py311" / "pyvenv.cfg").write_text("home = /usr/bin\n", encoding="utf-8")
    assert git(clone, "status", "--porcelain", "--untracked-files=all") == "?? .gitignore\n"


@pytest.mark.git
def test_git_ignores_the_readme_virtual_environment_and_pyenv_versions(clone: Path) -> None:
    (clone / ".venv" / "bin").mkdir(parents=True)
    (clone / ".venv" / "pyvenv.cfg").write_text("home = /usr/bin\n", encoding="utf-8")
    (clone / ".venv" / "bin" / "tox").write_text("#!/bin/sh\n", encoding="utf-8")
    (clone / ".python-version").write_text("3.11\n3.12\n3.13\n", encoding="utf-8")
    (clone / "build" / "html").mkdir(parents=True)
    (clone / "build" / "html" / "index.html").write_text("<html></html>\n", encoding="utf-8")
    assert git(clone, "status", "--porcelain", "--untracked-files=all") == "?? .gitignore\n"


def quick_start_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quick start", 1)[1]
    block = re.search(r"```console\n(.*?)```", section, re.DOTALL)
    assert block is not None, "README's Quick start has no console block"
    return block.group(1).strip().splitlines()


def test_ci_runs_the_readme_test_command_word_for_word() -> None:
    serve, suite = quick_start_commands()
    assert serve.endswith("tox -e serve")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    commands = [line for line in ci.splitlines() if line and not line.startswith(("#", " "))]
    assert commands[-1] == suite
