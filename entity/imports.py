"""Which of qnetstack's modules an implementation's code imports, read from its source.

Theory of operation
-------------------
Layers talk only through service modules (``docs/architecture.md``); inside
the repository import-linter enforces it, but an implementation from outside
is not in import-linter's graph. :func:`forbidden_imports` reads the source
of the implementation's code with :mod:`ast`, without running it, and lists
every import of a qnetstack module the implementation's layer may not use.

An implementation of ``layer`` may import, of qnetstack: ``qnetstack.entity``
(not the conformance kit in it), the modules of its own layer (a user may
build on the reference), and the public modules of the layers below it
(their ``service`` modules, and ``qnetstack.physical.params``). It may not
import another layer's private modules, a layer above it, ``qnetstack.stack``
or any conformance kit. Anything outside qnetstack (the standard library,
third-party packages, the user's own) is allowed.

What is read: the module that defines the implementation, the modules of its
base classes that are not qnetstack's (qnetstack's own are import-linter's
business), and, transitively, the modules of the same top-level package that
those import and that are already loaded (a user's helpers). Imports are
found wherever they are written (also inside functions), and so are
``importlib.import_module`` and ``__import__`` calls with a literal name. A
name computed at run time cannot be read without running the code.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import inspect
import os
import re
import sys
from collections.abc import Iterator
from typing import Any

__all__ = ["LAYER_ORDER", "forbidden_imports", "why_forbidden"]

# bottom to top, as in docs/architecture.md (the stack wires them and is not a layer)
LAYER_ORDER = ("physical", "link", "network", "application")
_PUBLIC = {"physical": ("service", "params"), "link": ("service",), "network": ("service",), "application": ("service",)}
_MAX_MODULES = 200  # a bound on how far the reading follows a user's package
# the conformance kit: what judges an implementation is not for it to use
_KIT = frozenset(f"qnetstack.entity.{name}" for name in ("checks", "conformance", "containment", "devices", "harness", "imports"))
_LAYER_KIT = re.compile(r"^qnetstack\.\w+\.conformance(\.|$)")


def why_forbidden(module: str, layer: str) -> str | None:
    """Why an implementation of ``layer`` may not import ``module``, or None if it may."""
    parts = module.split(".")
    if parts[0] != "qnetstack" or len(parts) == 1:
        return None
    if module in _KIT or _LAYER_KIT.match(module):
        return "the conformance kit"
    package = parts[1]
    if package in ("entity", "specs"):
        return None
    if package == layer:
        return None
    if package == "stack":
        return "the stack, which wires the layers (no layer imports it)"
    if package not in LAYER_ORDER:
        return "not a module of any layer"
    if LAYER_ORDER.index(package) > LAYER_ORDER.index(layer):
        return f"the {package} layer, above the {layer} layer"
    if len(parts) == 2 or parts[2] in _PUBLIC[package]:
        return None
    return (
        f"a private module of the {package} layer (only {', '.join(f'qnetstack.{package}.{m}' for m in _PUBLIC[package])} may be imported)"
    )


def forbidden_imports(impl: Any, layer: str) -> list[str]:
    """``"file:line imports X: why"`` for every import of the implementation's
    code that ``layer`` may not make; an entry also when a module's source
    cannot be read (its imports cannot be checked then)."""
    findings = []
    for module in _modules_to_read(impl):
        source, path = _source(module)
        if source is None:
            findings.append(f"the source of module {module.__name__} cannot be read, so its imports cannot be checked")
            continue
        try:
            tree = ast.parse(source, filename=path)
        except SyntaxError as exc:
            findings.append(f"{_shown(path)}: cannot be parsed ({exc.msg}), so its imports cannot be checked")
            continue
        for line, name in _imports(tree, module):
            reason = why_forbidden(name, layer)
            if reason is not None:
                findings.append(f"{_shown(path)}:{line} imports {name}: {reason}")
    return findings


# ---------------------------------------------------------------- what to read


def _modules_to_read(impl: Any) -> list[Any]:
    """The implementation's module, its base classes' modules outside qnetstack,
    and the loaded modules of their own packages that those import."""
    target = impl.func if isinstance(impl, functools.partial) else impl
    names = [getattr(target, "__module__", None)]
    if inspect.isclass(target):
        names += [base.__module__ for base in target.__mro__[1:] if not base.__module__.startswith(("qnetstack.", "builtins"))]
    roots = [sys.modules[n] for n in dict.fromkeys(names) if n and n in sys.modules]
    packages = {m.__name__.partition(".")[0] for m in roots} - {"qnetstack"}
    seen: dict[str, Any] = {}
    queue = list(roots)
    while queue and len(seen) < _MAX_MODULES:
        module = queue.pop(0)
        if module.__name__ in seen:
            continue
        seen[module.__name__] = module
        source, path = _source(module)
        if source is None:
            continue
        try:
            tree = ast.parse(source, filename=path)
        except SyntaxError:
            continue
        for _, name in _imports(tree, module):
            found = sys.modules.get(name)
            if found is not None and name.partition(".")[0] in packages and name not in seen:
                queue.append(found)
    return list(seen.values())


def _source(module: Any) -> tuple[str | None, str]:
    path = getattr(module, "__file__", None) or ""
    if not path.endswith(".py"):
        return None, path
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read(), path
    except (OSError, UnicodeDecodeError):
        return None, path


def _shown(path: str) -> str:
    """``path`` relative to the working folder when it lies inside it."""
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return path
    return path if relative.startswith("..") else relative


# ------------------------------------------------------------- what it imports


def _imports(tree: ast.AST, module: Any) -> Iterator[tuple[int, str]]:
    """``(line, absolute module name)`` of every import in ``tree``."""
    package = getattr(module, "__package__", None) or ""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node.module or "", node.level, package)
            if base is None:
                continue
            # ``from qnetstack.link import egp`` imports the module qnetstack.link.egp;
            # ``from qnetstack.link.egp import X`` imports from qnetstack.link.egp
            modules = [f"{base}.{a.name}" for a in node.names if a.name != "*" and _is_module(f"{base}.{a.name}")]
            if len(modules) < len(node.names):
                yield node.lineno, base
            for name in modules:
                yield node.lineno, name
        elif isinstance(node, ast.Call) and _is_import_call(node.func) and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                yield node.lineno, first.value


def _absolute(name: str, level: int, package: str) -> str | None:
    if level == 0:
        return name
    try:
        return importlib.util.resolve_name("." * level + name, package)
    except (ImportError, ValueError):
        return None


def _is_import_call(func: ast.expr) -> bool:
    if isinstance(func, ast.Name):
        return func.id in ("__import__", "import_module")
    return isinstance(func, ast.Attribute) and func.attr == "import_module"


def _is_module(name: str) -> bool:
    """Whether ``name`` names a module. Only qnetstack's names matter here, and
    finding one of those imports at most a qnetstack package (never the user's code)."""
    if name in sys.modules:
        return True
    if not name.startswith("qnetstack."):
        return False
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False
