"""The error hierarchy: one class per kind, each also a builtin."""

import inspect

import pytest

from keras_hubkit import errors

CLASSES = [
    obj
    for _, obj in inspect.getmembers(errors, inspect.isclass)
    if issubclass(obj, errors.HubkitError)
]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_error_is_documented_and_a_builtin(cls):
    # Docstrings are not inherited by `__doc__`: each class has its own.
    assert cls.__doc__
    if cls is not errors.HubkitError:
        builtins = [
            b
            for b in cls.__mro__
            if b.__module__ == "builtins"
            and b not in (Exception, BaseException, object)
        ]
        assert builtins, f"{cls.__name__} inherits no builtin error"


@pytest.mark.parametrize(
    "cls, also",
    [
        (errors.LayerArgumentError, ValueError),
        (errors.OutputShapeError, ValueError),
        (errors.LayerConfigError, ValueError),
        (errors.RegularizationLossError, TypeError),
        (errors.IncompleteModelError, OSError),
    ],
)
def test_kinds_split_from_handle_error_are_still_caught_as_it(cls, also):
    # Code written against the old catch-all keeps working.
    with pytest.raises(errors.HandleError):
        raise cls("x")
    with pytest.raises(also):
        raise cls("x")


def test_output_exists_is_an_export_error_and_a_file_exists_error():
    error = errors.OutputExistsError("x")
    assert isinstance(error, errors.ExportError)
    assert isinstance(error, FileExistsError)
