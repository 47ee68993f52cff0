"""Which top-level packages a Python module imports, statically or via importlib with a literal.

Run as a script (``python -m tests.support.import_scan FILE...``) it prints a JSON object mapping
each file to its sorted import roots. The dependency-rule test scans in that fresh interpreter:
CPython 3.11's AST constructor can raise a spurious ``SystemError`` ("recursion depth mismatch")
when ``ast.parse`` runs while other threads are alive, as they are late in the test session.
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

DYNAMIC_IMPORTERS = {"import_module", "__import__"}


def imported_roots(source: str) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            first = node.args[0]
            if name in DYNAMIC_IMPORTERS and isinstance(first, ast.Constant) \
                    and isinstance(first.value, str):
                roots.add(first.value.split(".")[0])
    return roots


def main(paths: list[str]) -> None:
    if paths == ["-"]:
        result = {"-": sorted(imported_roots(sys.stdin.read()))}
    else:
        result = {path: sorted(imported_roots(Path(path).read_text(encoding="utf-8")))
                  for path in paths}
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1:])
