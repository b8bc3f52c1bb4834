"""The layer contracts in pyproject.toml hold, and they see imports made inside functions."""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
LINT = pathlib.Path(sys.executable).with_name("lint-imports")


def lint(cwd: pathlib.Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run([str(LINT), "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_the_package_keeps_its_layers():
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout[-3000:]


def test_an_import_inside_a_function_that_climbs_a_layer_fails(tmp_path):
    shutil.copytree(ROOT / "st_matryoshka", tmp_path / "st_matryoshka", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    cache = tmp_path / "st_matryoshka" / "cache.py"
    cache.write_text(cache.read_text() + "\n\ndef planted():\n    from st_matryoshka.training import with_metadata\n")
    result = lint(tmp_path)
    assert result.returncode != 0
    assert "st_matryoshka.cache -> st_matryoshka.training" in result.stdout
    assert str(tmp_path) in subprocess.run(  # the copy, not the installed package, was analysed
        [sys.executable, "-c", "import st_matryoshka; print(st_matryoshka.__file__)"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(tmp_path)}, capture_output=True, text=True,
    ).stdout  # fmt: skip


def test_no_script_outside_the_package_imports_the_command_line_module():
    pattern = re.compile(
        r"^\s*(from st_matryoshka\.cli import|from st_matryoshka import cli|import st_matryoshka\.cli)"
    )
    offenders = [
        f"{path.relative_to(ROOT)}:{n}"
        for folder in ("benchmarks", "recipes")
        for path in sorted((ROOT / folder).rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.match(line)
    ]
    assert not offenders, offenders


def test_no_error_below_the_command_line_names_a_flag():
    """Library errors name the library's parameters; only cli.py and cli_parser.py speak of --flags."""
    import ast

    offenders = []
    for path in sorted((ROOT / "st_matryoshka").rglob("*.py")):
        if path.name in ("cli.py", "cli_parser.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) or (
                isinstance(node, ast.Call) and getattr(node.func, "attr", "") in ("warning", "info", "error")
            ):
                for part in ast.walk(node):
                    if isinstance(part, ast.Constant) and isinstance(part.value, str):
                        if re.search(r"(?<![\w-])--[a-z]", part.value):
                            offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {part.value[:60]!r}")
    assert not offenders, offenders
