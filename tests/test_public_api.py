"""The public API is listed once, in keras_hubkit/__init__.py."""

import pathlib

import keras_hubkit as hk

PACKAGE = pathlib.Path(hk.__file__).parent


def test_all_names_exist_and_are_documented():
    for name in hk.__all__:
        obj = getattr(hk, name)
        if name != "__version__":
            assert obj.__doc__, f"{name} has no docstring"


def test_every_public_name_has_an_api_page():
    docs = PACKAGE.parent / "docs" / "api"
    for name in hk.__all__:
        if name != "__version__":
            page = docs / f"{name}.md"
            assert page.exists(), f"docs/api/{name}.md is missing"
            assert "::: keras_hubkit." in page.read_text()


def test_errors_inherit_builtins():
    for name in dir(hk.errors):
        obj = getattr(hk.errors, name)
        if isinstance(obj, type) and issubclass(obj, hk.errors.HubkitError):
            if obj is not hk.errors.HubkitError:
                builtin_bases = [
                    b
                    for b in obj.__mro__
                    if b.__module__ == "builtins"
                    and b not in (Exception, BaseException, object)
                ]
                assert builtin_bases, f"{name} inherits no builtin error"
