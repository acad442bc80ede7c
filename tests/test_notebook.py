"""examples/classify-your-own-images.ipynb runs end to end (nbclient), with small parameters, so it cannot rot."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.slow  # executes the example notebook

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "classify-your-own-images.ipynb"
# 1,000 images (700 train / 300 validation) and 10 epochs of the fast network: the whole walkthrough, both halves
# (each trains, deploys, invokes), in about two minutes on 2 cores, and a model that works (87 % validation
# accuracy after 15 epochs and 81 % after 6 at batch 32, measured on a loaded machine; the test asks for 80 %).
PARAMETERS = {"subset": 1000, "epochs": 10, "time_budget": 60}
MIN_VALIDATION_ACCURACY = 0.80


def outputs_text(cells: list[nbformat.NotebookNode]) -> str:
    return "\n".join(
        out.get("text", "") or "".join(out.get("data", {}).get("text/plain", ""))
        for c in cells
        if c.cell_type == "code"
        for out in c.outputs
    )


def inject(nb: nbformat.NotebookNode, values: dict[str, object], workdir: Path) -> None:
    """Papermill's convention: a cell after the one tagged `parameters` overrides its values."""
    index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", []))
    lines = [f"{k} = {v!r}" for k, v in {**values, "workdir": str(workdir)}.items()]
    cell = nbformat.v4.new_code_cell("\n".join(lines), metadata={"tags": ["injected-parameters"]})
    nb.cells.insert(index + 1, cell)


def test_notebook_is_committed_without_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


@pytest.mark.timeout(420)
def test_notebook_runs_end_to_end(tmp_path: Path, dataset_mirror: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAILOR_DATASET_MIRROR", dataset_mirror)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    inject(nb, PARAMETERS, tmp_path / "work")
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = outputs_text(nb.cells)
    assert "Completed" in text
    assert text.count("InService") >= 2  # both halves' endpoints came up
    # The boto3 half's invoke_endpoint cell prints `Label (probability)` per image; labels are the class folders.
    classes = {p.name for p in (tmp_path / "work" / "images" / "train").iterdir()}
    invoked = outputs_text([c for c in nb.cells if "runtime.invoke_endpoint(" in c.source])
    answers = re.findall(r"^(\S+) \(([01]\.\d{6})\)$", invoked, flags=re.MULTILINE)
    assert len(answers) == 6 and {label for label, _ in answers} <= classes, invoked
    assert all(1 / len(classes) <= float(p) <= 1 for _, p in answers)  # a distribution's max is at least 1/n
    # A model that works, not one that guesses a class: both jobs' validation accuracy, and the invoked test images
    # (one per class, the folder names the truth) mostly right and not all given the same label.
    accuracies = [float(v) for v in re.findall(r"^validation:accuracy: ([01]\.\d{4})$", text, flags=re.MULTILINE)]
    assert len(accuracies) == 2 and min(accuracies) >= MIN_VALIDATION_ACCURACY, accuracies
    truths = re.findall(r"^\S*?([^/\s]+)/[^/\s]+\.jpg:$", invoked, flags=re.MULTILINE)  # test/<class>/<n>.jpg:
    correct = sum(truth == label for truth, (label, _) in zip(truths, answers, strict=True))
    assert correct >= 3 and len({label for label, _ in answers}) >= 3, invoked
    deleted = outputs_text([c for c in nb.cells if 'get_waiter("endpoint_deleted")' in c.source])
    assert deleted.strip() == "[]"  # list_endpoints after the clean-up
    assert any("image/png" in out.get("data", {}) for c in nb.cells for out in c.get("outputs", []))
