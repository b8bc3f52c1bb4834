"""The README's snippets run (issue 34).

Its Python blocks execute in order, in one namespace, in a scratch folder beside a link to ``../shared`` (as the
README's relative paths expect), and every ``# =>`` line must match what the statement before it gives (``...``
matches anything). A block preceded by ``<!-- snippet: not run (reason) -->`` is skipped, with the reason in the
README itself. Every ``st-matryoshka`` command in its shell blocks must parse with the command line's own parser,
optional ``[...]`` parts left out: a flag the README names and the CLI lost fails here.
"""

from __future__ import annotations

import ast
import contextlib
import io
import os
import re
import shlex

import numpy as np
import pytest
from conftest import REPO, SHARED

README = REPO / "README.md"
BLOCK = re.compile(r"(<!-- snippet: not run \((?P<reason>[^)]*)\) -->\n)?```(?P<lang>\w+)\n(?P<body>.*?)```", re.S)


def blocks(lang: str) -> list[tuple[int, str, str | None]]:
    """``(line, body, reason not run)`` of every ``lang`` block of the README."""
    text = README.read_text(encoding="utf-8")
    return [
        (text[: m.start("body")].count("\n") + 1, m.group("body"), m.group("reason"))
        for m in BLOCK.finditer(text)
        if m.group("lang") == lang
    ]


def matches(expected: str, got: str) -> bool:
    pattern = ".*".join(re.escape(part) for part in expected.split("..."))
    return re.fullmatch(pattern, got, re.S) is not None


def run_block(body: str, namespace: dict, line: int) -> None:
    """Execute ``body``; each ``# => expected`` checks the statement just before it (its value, or what it printed)."""
    pending: list[str] = []
    for number, text in enumerate(body.splitlines(), start=line):
        if not text.startswith("# => "):
            pending.append(text)
            continue
        tree = ast.parse("\n".join(pending))
        *before, last = tree.body
        exec(compile(ast.Module(before, type_ignores=[]), f"README.md:{line}", "exec"), namespace)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            if isinstance(last, ast.Expr):
                value = eval(compile(ast.Expression(last.value), f"README.md:{number - 1}", "eval"), namespace)
            else:
                exec(compile(ast.Module([last], type_ignores=[]), f"README.md:{number - 1}", "exec"), namespace)
                value = None
        got = out.getvalue().strip() if value is None else repr(value)
        assert matches(text[5:], got), f"README.md line {number}: expected {text[5:]!r}, got {got!r}"
        pending = []
    if any(p.strip() for p in pending):
        exec(compile("\n".join(pending), f"README.md:{line}", "exec"), namespace)


@pytest.mark.slow
def test_readme_python_snippets_run_and_print_what_they_say(tmp_path, scifact_slice, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    os.symlink(SHARED.parent, tmp_path / "shared")  # the README's ../shared/data, as beside a clone
    np.save(work / "corpus.npy", np.load(scifact_slice / "embeddings" / "corpus.npy"))  # "vectors you hold"
    monkeypatch.chdir(work)
    namespace: dict = {"__name__": "readme"}
    ran = 0
    for line, body, reason in blocks("python"):
        if reason is None:
            run_block(body, namespace, line)
            ran += 1
    assert ran >= 3


def test_every_readme_command_parses_with_the_real_parser():
    from st_matryoshka.cli_parser import build_parser

    parser = build_parser()
    commands = 0
    for line, body, _ in blocks("bash"):
        joined = re.sub(r"\\\n\s*", " ", body)
        for text in joined.splitlines():
            text = re.sub(r"\s+#.*$", "", text).strip()
            if not text.startswith("st-matryoshka "):
                continue
            while re.search(r"\[[^\[\]]*\]", text):  # optional parts, innermost first
                text = re.sub(r"\s*\[[^\[\]]*\]", "", text)
            try:
                parser.parse_args(shlex.split(text)[1:])
            except SystemExit:
                pytest.fail(f"README.md block at line {line}: {text!r} does not parse")
            commands += 1
    assert commands >= 15

