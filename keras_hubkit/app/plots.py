"""Pictures a person would rather see than read: curves, confusion matrix.

Matplotlib is imported lazily (it comes with the `demo` extra).
"""

import numpy as np


def pyplot():
    """Matplotlib's pyplot on the file-only Agg backend (no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def training_curves(history, path, title="Training"):
    """Plots loss and accuracy per epoch, shading each stage.

    Args:
        history: a `keras.callbacks.History` (a `StagedHistory` adds
            stages) or its `.history` dict.
        path: the PNG file to write.
        title: the figure title.
    """
    plt = pyplot()
    logs = getattr(history, "history", history)
    stages = logs.get("stage") or [0] * len(logs.get("loss", []))
    metrics = [m for m in ("loss", "accuracy") if m in logs]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.6))
    axes = np.atleast_1d(axes)
    epochs = np.arange(1, len(stages) + 1)
    for ax, metric in zip(axes, metrics):
        ax.plot(epochs, logs[metric], "o-", label=f"train {metric}")
        if f"val_{metric}" in logs:
            ax.plot(
                epochs,
                logs[f"val_{metric}"],
                "s--",
                label=f"validation {metric}",
            )
        _shade_stages(ax, stages)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _shade_stages(ax, stages):
    if not stages:
        return
    start = 0
    for i in range(1, len(stages) + 1):
        if i == len(stages) or stages[i] != stages[start]:
            color = "C7" if stages[start] % 2 else "C9"
            ax.axvspan(start + 0.5, i + 0.5, color=color, alpha=0.08)
            ax.text(
                start + 1,
                ax.get_ylim()[1],
                f"stage {stages[start] + 1}",
                fontsize=7,
                va="top",
            )
            start = i


def confusion_matrix(y_true, y_pred, class_names):
    """Counts: row = true class, column = predicted class."""
    n = len(class_names)
    matrix = np.zeros((n, n), int)
    for t, p in zip(y_true, y_pred):
        matrix[int(t), int(p)] += 1
    return matrix


def confusion_matrix_plot(matrix, class_names, path, title="Confusion"):
    """Draws a confusion matrix with counts in the cells."""
    plt = pyplot()
    n = len(class_names)
    size = max(3.5, 0.5 * n + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(n), class_names, rotation=45, ha="right")
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    peak = matrix.max() or 1
    for i in range(n):
        for j in range(n):
            ax.text(
                j,
                i,
                str(matrix[i, j]),
                ha="center",
                va="center",
                color="white" if matrix[i, j] > peak / 2 else "black",
            )
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
