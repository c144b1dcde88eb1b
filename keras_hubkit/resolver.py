"""Turns a model handle (path or URL) into a local SavedModel directory."""

import os

from keras_hubkit import errors


def resolve(handle) -> str:
    """Returns a local directory that holds the SavedModel for `handle`.

    Args:
        handle: a local path.

    Returns:
        The path as a string.

    Raises:
        HandleNotFoundError: the path does not exist.
    """
    path = os.fspath(handle)
    if not os.path.exists(path):
        raise errors.HandleNotFoundError(
            f"Expected an existing SavedModel directory. Received: "
            f"handle={path!r}, which does not exist."
        )
    return path
