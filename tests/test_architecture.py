"""Architecture rules of the difflogic package, checked on the source checkout.

* Import direction: the import-linter contracts of pyproject.toml ([tool.importlinter]: the
  model and compile layer stacks, commands imported by the CLI only, no benches/tests).
* Private names stay private: no module uses another module's ``_name`` (``from .x import
  _y`` or ``x._y``); private *modules* (``difflogic._C``, ``_checks``, ...) and dunder names
  may be used anywhere inside the package.
"""
import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "difflogic"
COMPILED = {"difflogic._C"}  # extension modules CMake builds: no source file in a checkout


def _ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true")


def test_import_contracts():
    try:
        import importlinter  # noqa: F401
    except ImportError:
        if _ci():
            pytest.fail("import-linter is not installed in CI (pip install '.[test]')")
        pytest.skip("import-linter not installed (pip install import-linter)")
    code = ("import sys; from importlinter.cli import lint_imports; "
            "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True, no_logo=True))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, f"import contracts broken:\n{out.stdout}{out.stderr}"


# ----------------------------------------------------------------------------- private names
def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(dotted: str) -> bool:
    if dotted in COMPILED:
        return True
    base = REPO.joinpath(*dotted.split("."))
    return (base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()
            or base.is_dir() or any(base.parent.glob(f"{base.name}.*.so")))


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _resolve_from(node: ast.ImportFrom, module: str, is_package: bool) -> str | None:
    """The absolute module an ImportFrom reads from, or None outside difflogic."""
    if node.level == 0:
        target = node.module or ""
    else:
        parts = module.split(".")[: len(module.split(".")) - node.level + is_package]
        target = ".".join(parts + ([node.module] if node.module else []))
    return target if target.split(".")[0] == "difflogic" else None


class _PrivateUse(ast.NodeVisitor):
    """Collects uses of another difflogic module's private names in one file."""

    def __init__(self, path: Path):
        self.path, self.module = path, _module_name(path)
        self.is_package = path.name == "__init__.py"
        self.bound: dict[str, str] = {}    # local name -> difflogic module it refers to
        self.found: list[str] = []

    def report(self, node, owner: str, name: str):
        if owner != self.module and not _is_module(f"{owner}.{name}"):
            self.found.append(f"{self.path.relative_to(REPO)}:{node.lineno}: "
                              f"{owner}.{name} is private to {owner}")

    def visit_Import(self, node):
        for alias in node.names:
            if alias.name.split(".")[0] == "difflogic":
                local = alias.asname or alias.name.split(".")[0]
                self.bound[local] = alias.name if alias.asname else "difflogic"

    def visit_ImportFrom(self, node):
        source = _resolve_from(node, self.module, self.is_package)
        if source is None:
            return
        for alias in node.names:
            if _is_private(alias.name):
                self.report(node, source, alias.name)
            if _is_module(f"{source}.{alias.name}"):
                self.bound[alias.asname or alias.name] = f"{source}.{alias.name}"

    def visit_Attribute(self, node):
        chain, value = [node.attr], node.value
        while isinstance(value, ast.Attribute):
            chain.insert(0, value.attr)
            value = value.value
        if isinstance(value, ast.Name) and value.id in self.bound:
            owner = self.bound[value.id]
            for part in chain[:-1]:
                if not _is_module(f"{owner}.{part}"):
                    break
                owner = f"{owner}.{part}"
            else:
                if _is_private(chain[-1]):
                    self.report(node, owner, chain[-1])
        self.generic_visit(node)


def private_name_uses(files) -> list[str]:
    found = []
    for path in sorted(files):
        visitor = _PrivateUse(path)
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):  # bindings first: an import may follow its use in the file
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                visitor.visit(node)
        visitor.found.clear()
        visitor.visit(tree)
        found += visitor.found
    return found


def test_no_module_uses_another_modules_private_names():
    found = private_name_uses(PACKAGE.rglob("*.py"))
    assert not found, "private names used across modules:\n" + "\n".join(found)


def test_private_name_check_catches_each_form(tmp_path, monkeypatch):
    """The checker itself, on a throw-away package: each forbidden form is reported, and the
    allowed ones (private modules, dunders, a module's own names) are not."""
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    pkg = tmp_path / "difflogic"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "_helpers.py").write_text("_x = 1\n")
    (pkg / "sub" / "__init__.py").write_text("_z = 3\n")
    (pkg / "sub" / "a.py").write_text("_y = 2\n")
    (pkg / "ok.py").write_text(
        "import difflogic\nfrom . import _helpers\nfrom ._helpers import *\nfrom .sub import a\n"
        "from difflogic import _C\n_own = 1\nprint(_own, difflogic.__version__, a.__name__)\n")
    (pkg / "bad.py").write_text(
        "import difflogic.sub.a as A\nimport difflogic\nfrom .sub import a, _z\n"
        "from ._helpers import _x\nprint(a._y, A._y, difflogic.sub.a._y)\n")
    found = private_name_uses(pkg.rglob("*.py"))
    assert [f.split(": ", 1)[1] for f in found] == [
        "difflogic.sub._z is private to difflogic.sub",
        "difflogic._helpers._x is private to difflogic._helpers",
        "difflogic.sub.a._y is private to difflogic.sub.a",
        "difflogic.sub.a._y is private to difflogic.sub.a",
        "difflogic.sub.a._y is private to difflogic.sub.a",
    ] and all(f.startswith("difflogic/bad.py:") for f in found)
