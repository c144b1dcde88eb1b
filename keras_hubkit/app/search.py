"""Search reports and the recipe runner for a recipe's `[search]` table.

The hypermodel itself is library code (`hk.tuning`); this module writes
files a person reads (`trials.md`, `search.png`) and retrains the best plan
with the recipe pipeline.
"""

import math
import os

from keras_hubkit._arrays import model_input
from keras_hubkit.app import plots
from keras_hubkit.app import train as train_lib


def search_report(tuner, output_dir):
    """Writes a search's trials as a table and a picture.

    Args:
        tuner: a keras-tuner tuner after `search`.
        output_dir: the folder for `trials.md` (a Markdown table) and
            `search.png` (objective per trial and per hyperparameter).

    Returns:
        The table as text.
    """
    trials = sorted(tuner.oracle.trials.values(), key=lambda t: t.trial_id)
    names = sorted(
        {
            k
            for t in trials
            for k in t.hyperparameters.values
            if not k.startswith("tuner/")
        }
    )
    header = ["trial", "status", "score", *names]
    rows = [
        [
            t.trial_id,
            t.status,
            _fmt(t.score),
            *[_fmt(t.hyperparameters.values.get(n, "")) for n in names],
        ]
        for t in trials
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    table = "\n".join(lines)
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, "trials.md"), "w") as f:
        f.write(table + "\n")
    _plot_search(
        trials,
        names,
        tuner.oracle.objective.name,
        os.path.join(output_dir, "search.png"),
    )
    return table


def _plot_search(trials, names, objective, path):
    plt = plots.pyplot()
    scored = [t for t in trials if t.score is not None]
    panels = 1 + len(names)
    cols = min(panels, 3)
    rows = math.ceil(panels / cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False
    )
    axes = axes.ravel()
    axes[0].plot(range(1, len(scored) + 1), [t.score for t in scored], "o-")
    axes[0].set_xlabel("trial")
    axes[0].set_ylabel(objective)
    for ax, name in zip(axes[1:], names):
        points = [
            (t.hyperparameters.values.get(name), t.score)
            for t in scored
            if name in t.hyperparameters.values
        ]
        ax.plot([str(p[0]) for p in points], [p[1] for p in points], "o")
        ax.set_xlabel(name)
        ax.set_ylabel(objective)
    for ax in axes[panels:]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def search_recipe(recipe, output_dir, verbose="auto", overwrite=False):
    """Runs a recipe's `[search]`, then retrains the best plan and exports.

    Args:
        recipe: a recipe dict with a `search` table.
        output_dir: where the search, its report and the final model go.
        verbose: Keras verbosity of the final training.
        overwrite: write into an `output_dir` that already holds files.

    Returns:
        The final training's results (see `train_classifier`), with the
        report's paths added.

    Raises:
        OutputExistsError: `output_dir` holds files and `overwrite` is off.
        RecipeError: the recipe is malformed.
        DataError: the data cannot be read.
    """
    from keras_hubkit import tuning

    with train_lib.output_folder(output_dir, overwrite):
        search = dict(recipe["search"])
        dataset, train, val, _ = train_lib.split_data(recipe.get("data", {}))
        train, val = train_lib.in_memory(recipe, train, val)
        model_config = recipe.get("model", {})
        hypermodel = tuning.HubClassifierHyperModel(
            model_config["handle"],
            len(dataset.class_names),
            input_shape=train.x.shape[1:] if train.x.dtype != object else (),
            dropout=search.get("dropout", (0.0, 0.2)),
            head_epochs=search.get("head_epochs", (1, 2)),
            unfreeze_groups=search.get("unfreeze_groups", (0, 1, 2)),
            base_lr=search.get("base_lr", (1e-5, 1e-3)),
            layer_decay=search.get("layer_decay", (0.5, 0.9)),
            label_smoothing=[model_config.get("label_smoothing", 0.0)],
            cache_features=search.get("cache_features", False),
        )
        epochs = int(search.get("epochs", 4))
        tuner = tuning.make_tuner(
            search.get("tuner", "random"),
            hypermodel,
            max_trials=int(search.get("max_trials", 4)),
            max_epochs=epochs,
            directory=os.path.join(output_dir, "search"),
        )
        tuner.search(
            model_input(train.x),
            train.y,
            epochs=epochs,
            validation_data=(model_input(val.x), val.y) if val else None,
            verbose=0,
        )
        print(search_report(tuner, output_dir))
        best = tuner.get_best_hyperparameters(1)[0]
        print(
            f"Best hyperparameters: {best.values}\n"
            "Retraining them into the final model."
        )
        final = _final_recipe(recipe, hypermodel, best, epochs)
        result = train_lib.train_classifier(
            final, output_dir, verbose=verbose, overwrite=True
        )
    result["paths"]["trials"] = os.path.join(output_dir, "trials.md")
    result["paths"]["search_plot"] = os.path.join(output_dir, "search.png")
    return result


def _final_recipe(recipe, hypermodel, best, epochs):
    """The recipe that retrains the best trial's model and plan."""
    model_config = recipe.get("model", {})
    final = {k: v for k, v in recipe.items() if k != "search"}
    final["model"] = {
        "handle": model_config["handle"],
        "dropout": best.values.get("dropout", 0.0),
        "label_smoothing": model_config.get("label_smoothing", 0.0),
    }
    final["stages"] = [
        {
            "epochs": s.epochs,
            "unfreeze": s.unfreeze,
            "lr": s.lr,
            **({"layer_decay": s.layer_decay} if s.layer_decay else {}),
        }
        for s in hypermodel.plan(best, epochs)
    ]
    return final


def _fmt(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    return value
