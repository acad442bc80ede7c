"""`tailor data split SRC DST`: stratified, seeded train/validation class folders of symlinks or copies."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from tailor.cli.main import cli
from tests.data.conftest import CLASSES, make_tree


def run(*args: str) -> tuple[int, str, BaseException | None]:
    res = CliRunner().invoke(cli, list(args))
    return res.exit_code, res.output, res.exception


def files(root: Path) -> dict[str, list[str]]:
    return {c.name: sorted(f.name for f in c.iterdir()) for c in sorted(root.iterdir())}


def test_split_is_stratified_seeded_and_links_by_default(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "photos", per_class=10)
    code, out, exc = run("data", "split", str(src), str(tmp_path / "a"), "--ratio", "0.8", "--seed", "0")
    assert code == 0, (out, exc)
    assert f"{tmp_path / 'a' / 'train'}: 24 images in 3 class folders (symlinks)" in out
    assert f"{tmp_path / 'a' / 'validation'}: 6 images in 3 class folders (symlinks)" in out
    train, val = files(tmp_path / "a" / "train"), files(tmp_path / "a" / "validation")
    assert list(train) == list(CLASSES) and all(len(v) == 8 for v in train.values())
    assert all(len(v) == 2 and not set(v) & set(train[c]) for c, v in val.items())
    link = tmp_path / "a" / "train" / "cat" / train["cat"][0]
    assert link.is_symlink() and link.resolve() == (src / "cat" / train["cat"][0]).resolve()
    # Same seed, same split; another seed, another one; --copy makes real files.
    run("data", "split", str(src), str(tmp_path / "b"), "--seed", "0", "--copy")
    assert files(tmp_path / "b" / "validation") == val
    assert not (tmp_path / "b" / "train" / "cat" / train["cat"][0]).is_symlink()
    run("data", "split", str(src), str(tmp_path / "c"), "--seed", "1")
    assert files(tmp_path / "c" / "validation") != val


def test_split_refuses_to_mix_into_an_earlier_split_or_a_flat_folder(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "photos", per_class=4)
    assert run("data", "split", str(src), str(tmp_path / "a"))[0] == 0
    code, _, exc = run("data", "split", str(src), str(tmp_path / "a"))
    assert code != 0 and "already holds files" in str(exc)
    code, _, exc = run("data", "split", str(src / "cat"), str(tmp_path / "b"))
    assert code != 0 and "no class folders" in str(exc)
    code, _, exc = run("data", "split", str(src), str(tmp_path / "c"), "--ratio", "1.5")
    assert code != 0 and "--ratio" in str(exc)
