"""The layout's promises (docs/architecture.md), checked on the source: imports flow one way,
like the data, nothing imports the command line, and no module or function grows too big to read."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "geounet"

# Lower layers never import higher ones; packages of one layer never import each other.
# grid (window math as pure functions, importing nothing of geounet) is a base: io samples windows with it.
LAYERS = {
    "errors": 0, "config": 0, "log": 0, "metrics": 0, "paths": 0, "__version__": 0, "grid": 0,
    "io": 1, "device": 1, "labels": 1,
    "model": 2, "vectorize": 2,
    "predict": 3, "train": 3, "evaluate": 3,
    "cli": 4, "__main__": 5,
}
# geounet/__init__.py: `geounet.load_model` imports the checkpoint reader lazily, inside the function.
ALLOWED = {("geounet", "model")}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield path, ".".join(parts)


def _imports(path: Path, name: str):
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                if not node.module:  # `from .. import metrics`
                    yield from (f"{target}.{a.name}" for a in node.names)
                    continue
            else:
                target = node.module or ""
            if target.startswith("geounet"):
                yield target
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("geounet"))


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "geounet"


def test_imports_flow_one_way():
    wrong = []
    for path, name in _modules():
        src = _top(name)
        for target in _imports(path, name):
            dst = _top(target)
            if src == dst or (src, dst) in ALLOWED:
                continue
            if dst not in LAYERS or src not in LAYERS:
                wrong.append(f"{name} -> {target} (package not placed in a layer)")
            elif LAYERS[dst] >= LAYERS[src]:
                wrong.append(f"{name} -> {target}")
    assert not wrong, "imports against the data flow:\n" + "\n".join(wrong)


def test_modules_and_functions_stay_small():
    big = []
    for path, name in _modules():
        text = path.read_text()
        if text.count("\n") > MAX_MODULE_LINES:
            big.append(f"{name}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    big.append(f"{name}.{node.name}: {n} lines")
    assert not big, "\n".join(big)


def test_the_library_never_exits_the_process():
    offenders = []
    for path, name in _modules():
        if _top(name) in ("cli", "__main__"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "exit" and getattr(node.value, "id", "") == "sys":
                offenders.append(name)
    assert not offenders, offenders
