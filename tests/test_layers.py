"""The layers `make lint` enforces (docs/architecture.md, "Where each concern lives")."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["shared", "producers", "recorder", "web", "devtools", "bench"]


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """Run import-linter on a tree, as `make lint` does."""
    tool = Path(sys.executable).with_name("lint-imports")
    return subprocess.run(
        [str(tool), "--no-cache"], cwd=root, capture_output=True, text=True, check=False
    )


def tree_copy(tmp_path: Path) -> Path:
    """The packages and the contracts, without assets."""
    skip = shutil.ignore_patterns("__pycache__", "static", "templates")
    for name in PACKAGES:
        shutil.copytree(ROOT / name, tmp_path / name, ignore=skip)
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


def test_the_tree_keeps_every_contract() -> None:
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("module", "line", "says"),
    [
        ("producers/runner.py", "from web import sse", "producers is not allowed to import web"),
        ("recorder/consumer.py", "import producers.outbox", "recorder is not allowed to import"),
        ("web/api.py", "import recorder.consumer", "web is not allowed to import recorder"),
        ("shared/store.py", "from web import db", "shared is not allowed to import web"),
        ("web/hub.py", "from web import stream", "No cycles are allowed in web"),
    ],
)
def test_a_forbidden_import_fails_the_lint(
    tmp_path: Path, module: str, line: str, says: str
) -> None:
    root = tree_copy(tmp_path)
    path = root / module
    path.write_text(path.read_text() + f"\n{line}  # noqa\n")
    done = lint_imports(root)
    assert done.returncode != 0
    assert "BROKEN" in done.stdout
    assert says in done.stdout


def test_comments_cite_only_files_in_the_repository() -> None:
    """Design notes outside the repository are not there for a reader: cite docs/ instead."""
    files = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    outside = [
        name
        for name in files
        if (ROOT / name).is_file()
        and name != "tests/test_layers.py"
        and "DESIGN.md" in (ROOT / name).read_text(errors="ignore")
    ]
    assert outside == [], (
        f"cite docs/architecture.md (or docs/*.md) instead of DESIGN.md in {outside}"
    )
