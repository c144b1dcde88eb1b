"""One door to private Keras/TensorFlow: only keras_hubkit/_compat.py.

A Keras release may rename or drop any private name without notice. The
rule, checked on the AST of every module but `_compat.py`:

1. No import of a private package (`keras.src`, `tensorflow.python`,
   `keras_tuner.src`, `tf_keras.src`).
2. No `obj._name` (read, write, `getattr`/`setattr`/`hasattr` with a string)
   unless `_name` is one of our own private names: defined in the package
   (a `def`/`class`, an assignment to `self._name`/`cls._name`, a class or
   module attribute) and not also a private attribute of the Keras,
   TensorFlow or keras-tuner classes we build on — overriding or calling
   one of those is private-API use as much as reading it.
3. No reaching into another module's private names: `obj._name` where
   `obj` is not `self`/`cls` and `_name` is not defined in the same module
   (public accessors exist for that), and no `from module import _name`
   of anything but our private modules (`_compat`, `_specs`, ...).
4. No `.fset`/`.fget`/`.fdel`: calling a base class's property machinery
   bypasses its public contract.

Tests follow rule 3 too: a test uses the public API of what it tests.
"""

import ast
import pathlib

import keras
import keras_tuner
import tensorflow as tf

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "keras_hubkit"
COMPAT = PACKAGE / "_compat.py"

PRIVATE_PACKAGES = ("keras.src", "tensorflow.python", "keras_tuner.src")
PRIVATE_PACKAGES += ("tf_keras.src",)
# A namedtuple's documented API starts with an underscore.
PUBLIC_UNDERSCORE = {"_replace", "_asdict", "_fields", "_make"}
PROPERTY_MACHINERY = {"fset", "fget", "fdel"}
# Attributes we attach to foreign objects carry our prefix (`_hubkit_...`):
# they are ours, whatever object holds them.
OWN_PREFIX = "_hubkit"
# Private names of the standard library (not Keras/TF), each with its use.
# Standard-library private names the package may use (none today).
STDLIB_PRIVATE = set()

# Bases whose classes inherit the framework's private attributes: a
# `self._x` in any other class is the class's own state, even where the
# framework happens to use the same name.
FRAMEWORK_ROOTS = ("keras", "tf", "keras_tuner", "tensorflow")

# Files other helpers are moving into _compat.py right now (issue 17). The
# lead empties these lists when their branches merge; never add to them.
PENDING_COMPAT = set()
PENDING_TESTS = set()


def _framework_private_names():
    """Private attributes of the framework classes the package builds on."""
    classes = [
        keras.layers.Layer,
        keras.Model,
        keras.Sequential,
        keras.callbacks.Callback,
        keras.callbacks.History,
        keras.optimizers.Optimizer,
        keras.optimizers.schedules.LearningRateSchedule,
        keras.losses.Loss,
        keras.Variable,
        tf.Module,
        tf.Variable,
        tf.train.Checkpoint,
        keras_tuner.HyperModel,
        keras_tuner.HyperParameters,
        keras_tuner.Tuner,
    ]
    names = set()
    for cls in classes:
        names |= {n for n in dir(cls) if _is_private(n)}
    # Instance attributes too: Keras sets many private ones in __init__.
    instances = [
        keras.layers.Layer(),
        keras.layers.Dense(1),
        keras.Sequential(),
        keras.callbacks.Callback(),
        keras.optimizers.SGD(),
        keras.Variable(0.0),
        tf.Module(),
        tf.Variable(0.0),
        keras_tuner.HyperParameters(),
    ]
    for obj in instances:
        names |= {n for n in vars(obj) if _is_private(n)}
        names |= {n for n in dir(obj) if _is_private(n)}
    return names


def _is_private(name):
    return (
        name.startswith("_")
        and not (name.startswith("__") and name.endswith("__"))
        and name not in PUBLIC_UNDERSCORE
    )


def _files(folder):
    return sorted(p for p in folder.rglob("*.py") if p != COMPAT)


def _defined_private(tree):
    """The private names a module defines (see rule 2)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names.add(node.name)
            for item in node.body:
                for target in _targets(item):
                    if isinstance(target, ast.Name):
                        names.add(target.id)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            for target in _targets(node):
                if (
                    isinstance(target, ast.Attribute)
                    and isinstance(target.value, ast.Name)
                    and target.value.id in ("self", "cls")
                ):
                    names.add(target.attr)
    for node in tree.body:
        for target in _targets(node):
            if isinstance(target, ast.Name):
                names.add(target.id)
    return {n for n in names if _is_private(n)}


def _targets(node):
    if isinstance(node, ast.Assign):
        return node.targets
    if isinstance(node, (ast.AnnAssign, ast.AugAssign)):
        return [node.target]
    return []


def _private_modules():
    return {
        p.stem for p in PACKAGE.rglob("_*.py") if not p.stem.startswith("__")
    }


def _accesses(tree):
    """`(name, owner, line)` of every attribute access by name; `owner` is
    the object's variable name when it is a plain name."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            owner = node.value.id if isinstance(node.value, ast.Name) else None
            yield node.attr, owner, node.lineno
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "setattr", "hasattr", "delattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
        ):
            owner = (
                node.args[0].id if isinstance(node.args[0], ast.Name) else None
            )
            yield node.args[1].value, owner, node.lineno


def _own_state_lines(tree):
    """Lines of `self._x` in classes with no framework base, where the class
    itself assigns `self._x`: plain state, whatever the name."""
    lines = set()
    for cls in ast.walk(tree):
        if not isinstance(cls, ast.ClassDef) or any(
            _root(base) in FRAMEWORK_ROOTS for base in cls.bases
        ):
            continue
        assigned = {
            t.attr
            for node in ast.walk(cls)
            for t in _targets(node)
            if isinstance(t, ast.Attribute)
            and isinstance(t.value, ast.Name)
            and t.value.id == "self"
        } | {
            node.name
            for node in cls.body
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        }
        for node in ast.walk(cls):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "self"
                and node.attr in assigned
            ):
                lines.add((node.attr, node.lineno))
    return lines


def _root(node):
    while isinstance(node, (ast.Attribute, ast.Call, ast.Subscript)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def violations(path, own, framework, text=None):
    """Rule violations in one file, as readable lines."""
    tree = ast.parse(text or path.read_text(encoding="utf8"))
    local = _defined_private(tree)
    own_state = _own_state_lines(tree)
    private_modules = _private_modules()
    found = []
    for node in ast.walk(tree):
        modules = []
        if isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules = [node.module]
            for alias in node.names:
                if _is_private(alias.name) and (
                    alias.name not in private_modules
                ):
                    found.append(
                        f"{node.lineno}: imports the private name "
                        f"{alias.name} from {node.module}"
                    )
        for module in modules:
            if module.startswith(PRIVATE_PACKAGES):
                found.append(f"{node.lineno}: imports {module}")
    for name, owner, line in _accesses(tree):
        if name in PROPERTY_MACHINERY:
            found.append(f"{line}: uses a property's .{name}")
        if (
            not _is_private(name)
            or name in private_modules
            or name.startswith(OWN_PREFIX)
            or name in STDLIB_PRIVATE
            or (name, line) in own_state
        ):
            continue
        if name in framework or name not in own:
            found.append(f"{line}: touches the framework's private .{name}")
        elif owner not in ("self", "cls") and name not in local:
            found.append(
                f"{line}: reaches into another module's private .{name}"
            )
    return found


def _report(paths, own, framework):
    lines = []
    for path in paths:
        relative = str(path.relative_to(ROOT))
        lines += [f"{relative}:{v}" for v in violations(path, own, framework)]
    return lines


def _own_names():
    own = set()
    for path in PACKAGE.rglob("*.py"):
        own |= _defined_private(ast.parse(path.read_text(encoding="utf8")))
    return own


def test_the_rule_catches_private_access():
    source = (
        "import keras\n"
        "from keras.src import backend\n"
        "from keras_hubkit.scanner import _REPORTS\n"
        "from keras_hubkit import _specs\n"
        "class L(keras.layers.Layer):\n"
        "    def build(self):\n"
        "        self._own = 1\n"
        "        self._track_variable(None)\n"
        "        keras.layers.Layer.trainable.fset(self, True)\n"
        "        getattr(self, '_build_at_init')\n"
        "        parts = ()\n"
        "        parts._replace(a=1)\n"
        "        return other._traced_spec, self._own, _specs\n"
    )
    found = violations(
        PACKAGE / "fake.py",
        _own_names() | {"_own", "_traced_spec"},
        _framework_private_names(),
        source,
    )
    assert sorted(int(v.split(":")[0]) for v in found) == [
        2,
        3,
        8,
        9,
        10,
        13,
    ], found


def test_only_compat_touches_private_keras_and_tensorflow():
    own, framework = _own_names(), _framework_private_names()
    checked = [
        p
        for p in _files(PACKAGE)
        if str(p.relative_to(ROOT)) not in PENDING_COMPAT
    ]
    found = _report(checked, own, framework)
    assert not found, (
        "Private Keras/TensorFlow names belong in keras_hubkit/_compat.py, "
        "each in a small function that says why and since which version; "
        "other modules' private names through a public accessor:\n"
        + "\n".join(found)
    )


def test_pending_files_still_exist():
    # A stale entry would silently exempt a future file of that name.
    for relative in PENDING_COMPAT | PENDING_TESTS:
        assert (ROOT / relative).is_file(), relative


def test_tests_use_public_names_of_the_package():
    own = _own_names()
    found = []
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        if str(path.relative_to(ROOT)) in PENDING_TESTS:
            continue
        tree = ast.parse(path.read_text(encoding="utf8"))
        local = _defined_private(tree)
        for name, owner, line in _accesses(tree):
            if (
                _is_private(name)
                and name in own
                and name not in local
                and owner not in ("self", "cls")
            ):
                found.append(f"{path.relative_to(ROOT)}:{line}: .{name}")
    assert not found, "Tests call private names of the package:\n" + "\n".join(
        found
    )


def test_all_layers_walks_nested_layers_once():
    from keras_hubkit import _compat

    shared = keras.layers.Dense(2, name="shared")
    inner = keras.Sequential([keras.Input((2,)), shared], name="inner")
    outer = keras.Sequential(
        [keras.Input((2,)), inner, shared, keras.layers.Dense(1, name="out")]
    )
    names = [layer.name for layer in _compat.all_layers(outer)]
    assert names[0] == outer.name
    assert names.count("shared") == 1
    assert {"inner", "shared", "out"} <= set(names)
