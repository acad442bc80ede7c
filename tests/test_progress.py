"""tailor.progress: a bar on a terminal, whole periodic lines (never carriage returns) on a pipe or a file."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

from tailor.progress import PlainProgress, progress_bar


def test_a_file_gets_plain_lines_at_the_interval_and_one_at_the_end() -> None:
    out = io.StringIO()
    bar = progress_bar(42_000, "pack fm_train.lst", unit="img", file=out, interval=0)
    assert isinstance(bar, PlainProgress)
    with bar:
        for _ in range(3):
            bar.update(14_000)
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and len(lines) == 4
    assert lines[0].startswith("pack fm_train.lst: 14,000 img of 42,000 img (33 %)")
    assert lines[-1].startswith("pack fm_train.lst: 42,000 img of 42,000 img (100 %)")


def test_quiet_between_intervals_and_bytes_scaled() -> None:
    out = io.StringIO()
    with progress_bar(None, "cp", unit="B", unit_scale=True, file=out, interval=3600) as bar:
        bar.update(2_500_000)
        bar.update(500_000)
    assert out.getvalue().splitlines() == [out.getvalue().splitlines()[0]]  # only the closing line
    assert out.getvalue().startswith("cp: 3.0 MB, ")


@pytest.mark.slow
def test_cli_progress_through_a_pipe_has_no_carriage_returns(tmp_path) -> None:  # noqa: ANN001
    from tests.data.conftest import make_tree

    tree = make_tree(tmp_path / "images", per_class=3)
    cmd = [sys.executable, "-m", "tailor.cli.main", "data"]
    subprocess.run([*cmd, "im2rec", str(tmp_path / "ds"), str(tree), "--list", "--recursive"], check=True)
    out = subprocess.run([*cmd, "im2rec", str(tmp_path / "ds"), str(tree)], capture_output=True, text=True)
    assert out.returncode == 0 and "\r" not in out.stderr and "\r" not in out.stdout, out.stderr
    assert "wrote" in out.stdout and "pack ds.lst: 9 img of 9 img (100 %)" in out.stderr, out.stderr
