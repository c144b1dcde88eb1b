"""The folder layout holds: the library core never imports the application,
and `import keras_hubkit` loads nothing heavy and patches nothing.

Pure AST and subprocess checks; no TensorFlow in this process.
"""

import ast
import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "keras_hubkit"
APP = PACKAGE / "app"
HEAVY = ("tensorflow", "keras", "keras_tuner", "matplotlib", "sklearn", "PIL")


def _module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


# `python -m keras_hubkit` starts the application: that file belongs to it.
ENTRY_POINT = PACKAGE / "__main__.py"


def _core_files():
    return sorted(
        p
        for p in PACKAGE.rglob("*.py")
        if APP not in p.parents and p != ENTRY_POINT
    )


def _resolve(node, module, is_package):
    """The absolute module an `ImportFrom` names (relative ones too)."""
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def imported_modules(path, text=None):
    """Every module `path` imports, at any depth (inside functions too),
    including names of `from X import name` (a name may be a module) and
    string arguments of `importlib.import_module` / `__import__`.

    `text` stands in for the file's content (to test the rule itself).
    """
    module = _module_name(path)
    tree = ast.parse(text or path.read_text(encoding="utf8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(node, module, path.name == "__init__.py")
            found.append((source, node.lineno))
            found += [(f"{source}.{a.name}", node.lineno) for a in node.names]
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = getattr(func, "attr", None) or getattr(func, "id", None)
            first = node.args[0]
            if name in ("import_module", "__import__") and isinstance(
                first, ast.Constant
            ):
                found.append((str(first.value), node.lineno))
    return found


def _is_app(module):
    return module == "keras_hubkit.app" or module.startswith(
        "keras_hubkit.app."
    )


def test_the_rule_sees_every_kind_of_import():
    source = (
        "import keras_hubkit.app.cli\n"
        "def f():\n"
        "    from keras_hubkit import app\n"
        "    from ..app import train\n"
        "    from . import runner\n"
        "    import importlib\n"
        "    importlib.import_module('keras_hubkit.app.demo')\n"
    )
    path = PACKAGE / "finetune" / "runner.py"
    found = {m for m, _ in imported_modules(path, source)}
    assert sorted(m for m in found if _is_app(m)) == [
        "keras_hubkit.app",
        "keras_hubkit.app.cli",
        "keras_hubkit.app.demo",
        "keras_hubkit.app.train",
    ]
    assert "keras_hubkit.finetune.runner" in found


def test_core_never_imports_the_application():
    offenders = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in _core_files()
        for module, line in imported_modules(path)
        if _is_app(module)
    ]
    assert not offenders, (
        "The library core must not import keras_hubkit.app (the "
        "application is built on the library, not the other way):\n"
        + "\n".join(offenders)
    )


def test_public_names_come_from_the_core():
    # The public table in __init__.py names modules as strings.
    tree = ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf8"))
    named = {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and node.value.startswith("keras_hubkit.")
    }
    assert "keras_hubkit.hub_layer" in named
    assert not [m for m in named if _is_app(m)]


def _fresh(code):
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_keras_hubkit_loads_nothing_heavy():
    loaded = _fresh(
        "import json, sys\n"
        "import keras_hubkit as hk\n"
        "hk.__version__, hk.__all__\n"
        f"print(json.dumps(sorted(m for m in sys.modules "
        f"if m.split('.')[0] in {HEAVY!r})))"
    )
    assert loaded == []


def test_the_cache_commands_need_no_tensorflow(tmp_path):
    loaded = _fresh(
        "import contextlib, io, json, sys\n"
        "from keras_hubkit.app import cli\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    assert cli.main(['cache', 'list', '--cache-dir', "
        f"{str(tmp_path)!r}]) == 0\n"
        "    try:\n"
        "        cli.main(['--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        f"print(json.dumps(sorted(m for m in sys.modules "
        f"if m.split('.')[0] in {HEAVY!r})))"
    )
    assert loaded == []


# Library modules that still print; their owners are switching them to
# logging or callbacks (issue 17). The lead empties this list at merge.
PENDING_PRINT = set()


def test_the_library_does_not_print():
    # The application (keras_hubkit/app) talks to a console on purpose; the
    # library reports through logging, return values and errors.
    offenders = []
    for path in _core_files():
        relative = str(path.relative_to(PACKAGE))
        if relative in PENDING_PRINT:
            continue
        tree = ast.parse(path.read_text(encoding="utf8"))
        offenders += [
            f"{relative}:{node.lineno}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "print"
        ]
    assert not offenders, "print() in library code: " + ", ".join(offenders)
