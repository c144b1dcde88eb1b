"""Recipes: a classifier run described in a TOML file.

```toml
[data]
kind = "image_folder"        # or text_folder, text_csv
path = "data/flowers"        # resized to the model's input size
augment = true               # random flip/rotation/zoom while training

[model]
handle = "https://tfhub.dev/google/imagenet/mobilenet_v3_small_075_224/feature_vector/5"

[[stages]]
epochs = 3
lr = 0.005                   # or "find": the learning-rate range test picks it
optimizer = "sgd"
momentum = 0.9

[train]
rollback = true              # undo a stage that makes validation worse

[output]
dir = "runs/flowers"
```

`hubkit run RECIPE --set model.dropout=0.3` overrides any value.
"""

import copy
import json
import os

from keras_hubkit import errors

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

TABLES = ("data", "model", "stages", "train", "search", "output")


def load_recipe(path, overrides=()):
    """Reads a recipe file and applies `key.sub=value` overrides.

    Relative paths in `data.path` and `output.dir` are taken from the
    recipe's folder.

    Args:
        path: the TOML file.
        overrides: strings `"table.key=value"`; the value is parsed as JSON
            when it can be (`0.3`, `true`, `[224, 224]`), else kept as text.
            Stages are addressed by index: `stages.0.epochs=1`.

    Returns:
        The recipe as a dict.

    Raises:
        RecipeError: the file is missing, is not TOML, has unknown tables,
            or an override is malformed.
    """
    try:
        with open(path, "rb") as f:
            recipe = tomllib.load(f)
    except FileNotFoundError as e:
        raise errors.RecipeError(
            f"Expected a recipe file. Received: recipe={path}, which does "
            "not exist. Check the path (see recipes/ for examples)."
        ) from e
    except tomllib.TOMLDecodeError as e:
        raise errors.RecipeError(
            f"Expected a TOML recipe. Received: recipe={path}, which is not "
            f"valid TOML ({e}). Fix the line it names."
        ) from e
    unknown = sorted(set(recipe) - set(TABLES) - {"name", "description"})
    if unknown:
        raise errors.RecipeError(
            f"Expected recipe tables among {list(TABLES)}. Received: "
            f"{path} has unknown tables {unknown}. Rename or remove them."
        )
    recipe = apply_overrides(recipe, overrides)
    base = os.path.dirname(os.path.abspath(path))
    for table, key in (("data", "path"), ("output", "dir")):
        value = recipe.get(table, {}).get(key)
        if value and not os.path.isabs(value) and "://" not in value:
            recipe[table][key] = os.path.join(base, value)
    return recipe


def apply_overrides(recipe, overrides):
    """A copy of `recipe` with each `a.b.c=value` set.

    Raises:
        RecipeError: an override without `=`, an unknown table, or a stage
            addressed by something other than its number.
    """
    recipe = copy.deepcopy(recipe)
    for item in overrides:
        if "=" not in item:
            raise errors.RecipeError(
                "--set expects key=value (e.g. model.dropout=0.3). "
                f"Received: --set {item!r}. Add '=' and a value."
            )
        key, raw = item.split("=", 1)
        _set(recipe, key.strip().split("."), _parse(raw.strip()), key)
    return recipe


def _set(node, parts, value, key):
    for i, part in enumerate(parts[:-1]):
        if isinstance(node, list):
            node = node[_index(part, node, key)]
        else:
            if i == 0 and part not in TABLES:
                raise errors.RecipeError(
                    f"Unknown recipe table in {key!r}. Expected one of "
                    f"{list(TABLES)}. Received: table={part!r}. Fix the "
                    "spelling."
                )
            node = node.setdefault(part, [] if part == "stages" else {})
    last = parts[-1]
    if isinstance(node, list):
        node[_index(last, node, key)] = value
    else:
        node[last] = value


def _index(part, node, key):
    try:
        return int(part)
    except ValueError:
        raise errors.RecipeError(
            "Expected a stage number, e.g. stages.0.epochs. Received: "
            f"{key!r}. Address stages by their index, from 0."
        ) from None


def _parse(raw):
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def run_recipe(recipe, output_dir=None, verbose="auto", overwrite=False):
    """Runs a loaded recipe: trains (or searches), evaluates, exports.

    Args:
        recipe: a dict from `load_recipe`.
        output_dir: where results go (default: the recipe's `[output] dir`).
        verbose: Keras verbosity.
        overwrite: write into an output folder that already holds files.

    Returns:
        The run's results (see `keras_hubkit.app.train.train_classifier`).

    Raises:
        RecipeError: the recipe is malformed or says nowhere to write.
        OutputExistsError: the output folder holds files.
        DataError: the data cannot be read.
    """
    output_dir = output_dir or recipe.get("output", {}).get("dir")
    if not output_dir:
        raise errors.RecipeError(
            "Expected an output folder. Received: no [output] dir in the "
            "recipe and no --output. Set one of them."
        )
    if recipe.get("search"):
        from keras_hubkit.app.search import search_recipe

        return search_recipe(
            recipe, output_dir, verbose=verbose, overwrite=overwrite
        )
    from keras_hubkit.app.train import train_classifier

    return train_classifier(
        recipe, output_dir, verbose=verbose, overwrite=overwrite
    )
