"""The CLI's one confusion-matrix picture (`tailor jobs plot` and `tailor transform`): rows true, columns predicted."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def draw_confusion(matrix: Any, names: list[str], title: str, path: Path) -> Path:
    """``matrix[i][j]``: images of true class ``names[i]`` predicted ``names[j]``; a PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    matrix = np.asarray(matrix, dtype=int)
    k = len(names)
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(k), names, rotation=45, ha="right")
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)  # two short lines: one long title was cut off at the figure's edge
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
