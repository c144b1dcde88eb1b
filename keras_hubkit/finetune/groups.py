"""Layer groups: the units staged fine-tuning freezes and unfreezes.

A model is split into a *base* (pretrained parts: `HubLayer`s and nested
Keras models such as `keras.applications` backbones) and a *head* (every
other layer with weights). The base is cut into ordered groups, bottom to
top: inside a `HubLayer`, the SavedModel's variables grouped by name
(`HubLayer.variable_groups`); inside a nested model, its layers. The head is
always trained.
"""

import dataclasses
import re

import keras

from keras_hubkit import errors
from keras_hubkit.hub_layer import HubLayer


@dataclasses.dataclass
class Group:
    """One unit of unfreezing: a name, its owner layer, its variables."""

    name: str
    layer: keras.layers.Layer
    variables: list


def base_groups(model, base=None):
    """The base's groups, ordered bottom (input side) to top.

    Args:
        model: a Keras model.
        base: the base layers; default: every `HubLayer` and nested model.

    Returns:
        A list of `Group`.
    """
    groups = []
    for layer in base if base is not None else base_layers(model):
        if isinstance(layer, HubLayer):
            for key, variables in layer.variable_groups().items():
                groups.append(Group(f"{layer.name}/{key}", layer, variables))
        elif isinstance(layer, keras.Model):
            groups += _nested_groups(layer)
        elif layer.weights:
            groups.append(Group(layer.name, layer, list(layer.weights)))
    return groups


def base_layers(model):
    """The pretrained parts of `model`: HubLayers and nested models."""
    return [
        layer
        for layer in model.layers
        if isinstance(layer, (HubLayer, keras.Model))
    ]


def head_layers(model, base=None):
    """The layers with weights that are not part of the base."""
    base_ids = {
        id(x) for x in (base if base is not None else base_layers(model))
    }
    return [
        layer
        for layer in model.layers
        if id(layer) not in base_ids and layer.weights
    ]


def select(groups, unfreeze):
    """The groups a stage unfreezes.

    Args:
        groups: the base groups, bottom to top.
        unfreeze: `None`, `0` or `"head"` (no base group), `"all"`, an int
            N (the top N groups), or a list of regular expressions matched
            (`re.search`) against group names.

    Returns:
        The selected groups, in order.
    """
    if unfreeze is None or unfreeze == "head" or unfreeze == 0:
        return []
    if unfreeze == "all":
        return list(groups)
    if isinstance(unfreeze, bool):
        return list(groups) if unfreeze else []
    if isinstance(unfreeze, int):
        if unfreeze < 0:
            raise errors.StagePlanError(
                f"`unfreeze` counts groups from the top and must be >= 0. "
                f"Received: {unfreeze}."
            )
        return list(groups[len(groups) - min(unfreeze, len(groups)) :])
    if isinstance(unfreeze, str):
        unfreeze = [unfreeze]
    patterns = [re.compile(p) for p in unfreeze]
    chosen = [g for g in groups if any(p.search(g.name) for p in patterns)]
    if not chosen:
        raise errors.StagePlanError(
            f"No group matches unfreeze={unfreeze!r}. Groups (bottom to "
            f"top): {[g.name for g in groups]}."
        )
    return chosen


def _nested_groups(model):
    groups = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            groups += _nested_groups(layer)
        elif isinstance(layer, HubLayer):
            groups += base_groups(model, [layer])
        elif layer.weights:
            groups.append(
                Group(f"{model.name}/{layer.name}", layer, list(layer.weights))
            )
    return groups
