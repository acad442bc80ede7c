"""`tailor data` commands: fetch, import-idx, im2rec, split, inspect, cp."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click

from tailor.errors import DataError, ValidationError


def _settings(ctx: click.Context):  # noqa: ANN202 - avoids importing the CLI root at module import
    from tailor.cli.root import settings_of

    return settings_of(ctx)


def _bar(total: int | None, desc: str, unit: str = "img", unit_scale: bool = False):  # noqa: ANN202
    from tailor.progress import progress_bar

    return progress_bar(total, desc, unit=unit, unit_scale=unit_scale)


@click.group("data")
def data() -> None:
    """Prepare images for training: datasets, class folders, .lst/.rec (im2rec), split, inspect, copy to buckets."""


@data.command("fetch")
@click.argument("name", type=click.Choice(["fashion-mnist", "mnist"]))
@click.option("--dest", type=click.Path(file_okay=False, path_type=Path), help="Also copy the files here.")
@click.pass_context
def fetch_cmd(ctx: click.Context, name: str, dest: Path | None) -> None:
    """Download NAME's four IDX files (md5-verified, cached; TAILOR_DATASET_MIRROR replaces the origin)."""
    from tailor.data.datasets import fetch

    with _bar(None, f"fetch {name}", "B", True) as bar:
        files = fetch(name, _settings(ctx), dest=dest, progress=bar.update)
    for fname, path in files.items():
        click.echo(f"{fname}\t{path}")


@data.command("import-idx")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--dataset", type=click.Choice(["fashion-mnist", "mnist"]), help="Named dataset (fetched if needed).")
@click.option("--images", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="IDX images file.")
@click.option("--labels", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="IDX labels file.")
@click.option("--split", type=click.Choice(["train", "test", "both"]), default="both", show_default=True)
@click.option("--class-names", help="Comma-separated folder name per label id (default: the dataset's).")
@click.option("--format", "fmt", type=click.Choice(["jpg", "png"]), default="jpg", show_default=True)
@click.option("--quality", type=click.IntRange(1, 100), default=95, show_default=True, help="JPEG quality.")
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N images of each split.")
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True)
@click.pass_context
def import_idx_cmd(
    ctx: click.Context,
    out_dir: Path,
    dataset: str | None,
    images: Path | None,
    labels: Path | None,
    split: str,
    class_names: str | None,
    fmt: str,
    quality: int,
    limit: int | None,
    workers: int,
) -> None:
    """IDX images + labels → OUT_DIR/<split>/<class>/<n>.jpg (or OUT_DIR/<class>/ with --images/--labels).

    Fashion-MNIST folders are AnkleBoot, Bag, Coat, Dress, Pullover, Sandal, Shirt, Sneaker, TShirtTop, Trouser,
    so sorted folder order (im2rec's labels) is the class order SageMaker examples use; MNIST uses 0…9.
    """
    from tailor.data.datasets import SPLIT_FILES, fetch, get_dataset
    from tailor.data.folders import import_idx

    names = [n.strip() for n in class_names.split(",")] if class_names else None
    jobs: list[tuple[str, Path, Path, Path]] = []
    if dataset:
        if images or labels:
            raise ValidationError("give either --dataset or --images/--labels, not both")
        files = fetch(dataset, _settings(ctx))
        names = names or list(get_dataset(dataset).class_names)
        for sp in ("train", "test") if split == "both" else (split,):
            img_f, lab_f = SPLIT_FILES[sp]
            jobs.append((sp, files[img_f], files[lab_f], out_dir / sp))
    else:
        if not (images and labels):
            raise ValidationError("give --dataset NAME, or both --images and --labels")
        jobs.append(("images", images, labels, out_dir))
    for sp, img_path, lab_path, dest in jobs:
        from tailor.data.idx import read_idx

        n_labels = int(read_idx(lab_path).max()) + 1
        use = names or [str(i) for i in range(n_labels)]
        with _bar(None, f"import {sp}") as bar:
            counts = import_idx(
                img_path, lab_path, dest, use, fmt=fmt, quality=quality, limit=limit, workers=workers,
                progress=bar.update,
            )  # fmt: skip
        click.echo(f"{dest}: {sum(counts.values())} images in {len(counts)} class folders")


@data.command("im2rec")
@click.argument("prefix")
@click.argument("root", type=click.Path(path_type=Path))
@click.argument("more_exts", nargs=-1, metavar="")
@click.option("--list", "make_list", is_flag=True, help="Create PREFIX.lst (or _train/_val/_test) from ROOT.")
@click.option("--exts", multiple=True, default=(".jpeg", ".jpg", ".png"), show_default=True)
@click.option("--chunks", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--train-ratio", type=float, default=1.0, show_default=True)
@click.option("--test-ratio", type=float, default=0.0, show_default=True)
@click.option("--recursive", is_flag=True, help="One label per sub-folder (sorted order).")
@click.option("--no-shuffle", "no_shuffle", is_flag=True, help="Keep the walk order in the list.")
@click.option("--pass-through", is_flag=True, help="Pack the image files' bytes as they are.")
@click.option("--resize", type=click.IntRange(min=0), default=0, show_default=True, help="Shorter side to N px.")
@click.option("--center-crop", is_flag=True, help="Crop the centre square before resizing.")
@click.option("--quality", type=click.IntRange(0, 100), default=95, show_default=True)
@click.option("--num-thread", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--color", type=click.Choice(["-1", "0", "1"]), default="1", show_default=True)
@click.option("--encoding", type=click.Choice([".jpg", ".png"]), default=".jpg", show_default=True)
@click.option("--pack-label", is_flag=True, help="Store every label column of multi-label lists.")
def im2rec_cmd(
    prefix: str,
    root: Path,
    more_exts: tuple[str, ...],
    make_list: bool,
    exts: tuple[str, ...],
    chunks: int,
    train_ratio: float,
    test_ratio: float,
    recursive: bool,
    no_shuffle: bool,
    pass_through: bool,
    resize: int,
    center_crop: bool,
    quality: int,
    num_thread: int,
    color: str,
    encoding: str,
    pack_label: bool,
) -> None:
    """MXNet im2rec.py: with --list write image lists, otherwise pack PREFIX*.lst into .rec + .idx."""
    from tailor.data.lst import make_lists
    from tailor.data.pack import PackOptions, pack_prefix

    # im2rec takes `--exts .jpg .png` (argparse nargs='+'); click options take one value, so the words after
    # the first land in MORE_EXTS. Also accepted: repeated --exts and comma-separated lists.
    if more_exts and not all(e.startswith(".") for e in more_exts):
        raise click.UsageError(f"unexpected extra arguments: {' '.join(more_exts)}")
    ext_list = [e for raw in (*exts, *more_exts) for e in raw.replace(",", " ").split()]
    prefix = os.path.abspath(prefix)
    if make_list:
        written, classes = make_lists(
            prefix, root, recursive=recursive, exts=ext_list, shuffle=not no_shuffle, chunks=chunks,
            train_ratio=train_ratio, test_ratio=test_ratio,
        )  # fmt: skip
        for label, folder in enumerate(classes):
            click.echo(f"{folder}\t{label}")
        for path in written:
            click.echo(f"wrote {path}")
        return
    opts = PackOptions(pass_through, resize, center_crop, quality, encoding, int(color), pack_label).validate()
    bars = []

    def on_list(lst: Path, n: int) -> None:
        if bars:
            bars.pop().close()
        bars.append(_bar(n, f"pack {lst.name}"))

    try:
        results = pack_prefix(
            prefix, root, opts, num_thread=num_thread, progress=lambda k: bars[-1].update(k), on_list=on_list
        )
    finally:
        for b in bars:
            b.close()
    skipped = 0
    for res in results:
        extra = f" and {res.classes.name} (class names)" if res.classes else ""
        click.echo(f"wrote {res.rec} ({res.written} records), {res.idx.name}{extra}")
        for _, reason in res.skipped[:5]:
            click.echo(f"warning: skipped {reason}", err=True)
        skipped += len(res.skipped)
    if skipped:
        click.echo(f"warning: {skipped} unreadable images skipped in total", err=True)


@data.command("split")
@click.argument("src", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("dst", type=click.Path(file_okay=False, path_type=Path))
@click.option("--ratio", type=float, default=0.8, show_default=True, help="Share of each class that goes to train.")
@click.option("--seed", type=int, default=0, show_default=True, help="Shuffle seed: same seed, same split.")
@click.option("--copy", is_flag=True, help="Copy the images instead of linking to them.")
@click.option("--per-class", type=click.IntRange(min=1), help="Only N images of each class (a quick try).")
def split_cmd(src: Path, dst: Path, ratio: float, seed: int, copy: bool, per_class: int | None) -> None:
    """SRC/<class>/ images → DST/train/<class>/ and DST/validation/<class>/, stratified (symlinks by default)."""
    from tailor.data.split import split_folders

    res = split_folders(src, dst, ratio=ratio, seed=seed, copy=copy, per_class=per_class)
    how = "copies" if copy else "symlinks"
    for folder, n in zip((res.train, res.validation), res.totals(), strict=True):
        click.echo(f"{folder}: {n} images in {len(res.counts)} class folders ({how})")


@data.command("inspect")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), help="Image root of a .lst file.")
@click.option("--grid", type=click.Path(dir_okay=False, path_type=Path), help="Write a PNG of samples + labels.")
def inspect_cmd(path: Path, root: Path | None, grid: Path | None) -> None:
    """Counts per class and image sizes of a .rec file, a .lst file or a folder of class folders."""
    from tailor.data.inspect import inspect_path, write_grid

    summary = inspect_path(path, root)
    for line in summary.lines():
        click.echo(line)
    if grid:
        click.echo(f"wrote {write_grid(summary, grid)}")


@data.command("cp")
@click.argument("src")
@click.argument("dst")
@click.option("--recursive", "-r", is_flag=True, help="Copy every file under SRC (a folder or key prefix).")
@click.pass_context
def cp_cmd(ctx: click.Context, src: str, dst: str, recursive: bool) -> None:
    """Copy between local paths and buckets (s3://bucket/key), e.g. `tailor data cp -r rec/ s3://b/train/`."""
    from tailor.storage import Storage, join_uri

    storage = Storage(_settings(ctx))
    if recursive:
        objects = storage.list(src)
        if not objects:
            raise DataError("nothing to copy", path=src)
        base = src.rstrip("/")
        pairs = []
        for obj in objects:
            rel = obj.uri[len(base) :].lstrip("/") if obj.uri.startswith(base) else obj.key
            pairs.append((obj.uri, join_uri(dst, rel), obj.size))
    else:
        if not storage.exists(src):
            raise DataError("no such file or object", path=src)
        target = join_uri(dst, src.rstrip("/").rsplit("/", 1)[-1]) if dst.endswith("/") or _is_dir(dst) else dst
        pairs = [(src, target, storage.size(src)), *_companion_pairs(storage, src, target)]
    with _bar(sum(p[2] for p in pairs), "cp", "B", True) as bar:
        for s, d, _ in pairs:
            _copy_one(storage, s, d, bar.update)
    names = ", ".join(d.rsplit("/", 1)[-1] for _, d, _ in pairs)
    click.echo(f"copied {len(pairs)} file(s) to {dst}" + (f" ({names})" if len(pairs) > 1 else ""))


def _companion_pairs(storage, src: str, target: str) -> list[tuple[str, str, int]]:  # noqa: ANN001
    """A local .rec takes its .idx and class-name map along (tailor.data.classes), renamed as the target is."""
    from tailor.data.classes import companions

    local = storage.local_path(src)
    if local is None or local.suffix != ".rec" or not target.endswith(".rec"):
        return []
    stem = target[: -len(".rec")]
    return [(str(p), stem + p.name[len(local.stem) :], p.stat().st_size) for p in companions(local)]


def _is_dir(uri: str) -> bool:
    return "://" not in uri and Path(uri).is_dir()


def _copy_one(storage, src: str, dst: str, progress) -> None:  # noqa: ANN001
    local_src = storage.local_path(src)
    if local_src is not None:
        storage.upload_file(local_src, dst, progress=progress)
        return
    local_dst = storage.local_path(dst)
    if local_dst is not None:
        storage.download_file(src, local_dst, progress=progress)
        return
    with tempfile.TemporaryDirectory(prefix="tailor-cp-") as tmp:
        staged = storage.download_file(src, Path(tmp) / "obj", progress=progress)
        storage.upload_file(staged, dst)


commands: list[click.Command] = [data]
