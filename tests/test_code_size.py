"""The package's functions stay short enough to read next to a slide: none reaches 70 lines."""

import ast
from pathlib import Path

import minicnn

LIMIT = 70


def _functions():
    root = Path(minicnn.__file__).parent
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield node.end_lineno - node.lineno + 1, f"{path.relative_to(root.parent)}:{node.lineno} {node.name}"


def test_no_function_in_minicnn_reaches_70_lines():
    functions = sorted(_functions(), reverse=True)
    assert functions, "no function found: the walk over the package is broken"
    longest, where = functions[0]
    assert longest < LIMIT, f"{where} has {longest} lines (limit {LIMIT - 1}); split it"


if __name__ == "__main__":  # python tests/test_code_size.py: the five longest
    for lines, where in sorted(_functions(), reverse=True)[:5]:
        print(f"{lines:4d}  {where}")
