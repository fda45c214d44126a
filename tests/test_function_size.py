"""No function of the package is over 60 lines (definition line to last line, docstring
included): read off every module's syntax tree, so it stays true as the code grows."""

import ast
import pathlib

import tvm_gap8

MAX_LINES = 60


def _functions(path: pathlib.Path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node.name, node.lineno, node.end_lineno - node.lineno + 1


def test_no_function_over_60_lines():
    root = pathlib.Path(tvm_gap8.__file__).parent
    modules = sorted(root.rglob("*.py"))
    assert len(modules) > 50  # the whole package, subpackages included
    long = [f"{p.relative_to(root)}:{line} {name} ({n} lines)"
            for p in modules for name, line, n in _functions(p) if n > MAX_LINES]
    assert not long, "functions over 60 lines: " + "; ".join(long)
