"""The shape of the code (ARCHITECTURE.md): imports point down the layers only, functions stay short
enough to read, and code asks a model what it can do instead of comparing family names."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "recsys_core"

# Bottom first; a module may import from its own layer and the ones below it.
LAYERS = [
    ("paths",),
    ("data",),
    ("models",),
    ("metrics", "tensors", "results"),
    ("store",),
    ("serving",),
    ("protocols",),
    ("training",),
    ("__main__", "__init__"),
]
TOP = len(LAYERS)  # the app, its pages and the ui package sit above the whole library
MAX_FUNCTION_LINES = 60


def layer_of(module: str) -> int:
    """The layer of a dotted module name: ``recsys_core.serving.pipeline`` -> serving's."""
    parts = module.split(".")
    if parts[0] != "recsys_core":
        return TOP
    top = parts[1] if len(parts) > 1 else "__init__"
    for rank, names in enumerate(LAYERS):
        if top in names:
            return rank
    raise AssertionError(f"{module} is in no layer of ARCHITECTURE.md; add it to LAYERS")


def module_name(path: Path) -> str:
    relative = path.relative_to(ROOT).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__" and len(parts) > 2:
        parts = parts[:-1]
    return ".".join(parts)


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.startswith("recsys_core")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("recsys_core"):
            if node.module == "recsys_core":  # `from recsys_core import data`: the names are modules
                found += [(node.lineno, f"recsys_core.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, node.module))
    return found


def sources() -> list[Path]:
    """The library and the app: what the layering holds to."""
    return sorted([*PACKAGE.rglob("*.py"), *(ROOT / "app_pages").glob("*.py"), *(ROOT / "ui").rglob("*.py"),
                   ROOT / "app.py"])  # fmt: skip


def callers() -> list[Path]:
    """Everything that uses the models: the library and the app, the benchmarks and the tests."""
    here = Path(__file__).resolve()
    return [*sources(), *(ROOT / "bench").glob("*.py"), *(p for p in (ROOT / "tests").glob("*.py") if p != here)]


def test_the_layering_check_sees_an_upward_import():
    tree = ast.parse("from recsys_core.training.loop import fit\nimport recsys_core.serving.retriever\n")
    importer = layer_of("recsys_core.serving.pipeline")
    upward = [name for _, name in imported_modules(tree) if layer_of(name) > importer]
    assert upward == ["recsys_core.training.loop"]


def test_imports_point_down_the_layers():
    violations = []
    for path in sources():
        importer = module_name(path)
        rank = layer_of(importer)
        for line, imported in imported_modules(ast.parse(path.read_text())):
            if layer_of(imported) > rank:
                violations.append(f"{path.relative_to(ROOT)}:{line} ({LAYERS[rank] if rank < TOP else 'ui'}) "
                                  f"imports {imported}, a higher layer")  # fmt: skip
    assert not violations, "\n".join(violations)


def test_no_function_in_the_library_is_longer_than_a_screen():
    long = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length} lines)")
    assert not long, "\n".join(long)


def test_nothing_outside_the_models_asks_a_model_its_family_or_probes_its_attributes():
    probes = []
    models = PACKAGE / "models"
    for path in callers():
        if models in path.parents:
            continue
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if 'family == "rankers"' in line or 'family != "rankers"' in line or "hasattr(" in line:
                probes.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not probes, "\n".join(probes)
