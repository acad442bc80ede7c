"""Training-data parsers on arbitrary bytes: RecordIO (.rec, .idx), IDX, .lst and augmented manifests fail only
with DataError / ValidationError, through the reader and through the training loader."""

from __future__ import annotations

from hypothesis import example, given

from tests.fuzz.targets import BY_NAME, idx_samples, lst_samples, manifest_samples, recordio_samples

RECORDIO, RECORDIO_CHANNEL, RECORDIO_IDX = BY_NAME["recordio"], BY_NAME["recordio-channel"], BY_NAME["recordio-idx"]
IDX, LST, MANIFEST = BY_NAME["idx"], BY_NAME["lst"], BY_NAME["manifest"]


def test_valid_samples_parse() -> None:
    """The untouched samples the mutations start from are valid: the property is not met by refusing all."""
    for data in recordio_samples():
        RECORDIO.run(data)
    for data in recordio_samples()[:2]:  # single-label files: a channel loads them whole
        RECORDIO_CHANNEL.run(data)
    for data in idx_samples():
        IDX.run(data)
    LST.run(lst_samples()[0])
    LST.run(lst_samples()[1])
    MANIFEST.run((manifest_samples()[0], None))
    MANIFEST.run((manifest_samples()[1], ["source-ref", "labels"]))


@given(RECORDIO.strategy)
def test_recordio_reader(data: bytes) -> None:
    RECORDIO.check(data)


@given(RECORDIO_CHANNEL.strategy)
def test_recordio_training_loader(data: bytes) -> None:
    RECORDIO_CHANNEL.check(data)


@given(RECORDIO_IDX.strategy)
@example(b"\xcc")  # not UTF-8: was UnicodeDecodeError
def test_recordio_index(data: bytes) -> None:
    RECORDIO_IDX.check(data)


@given(IDX.strategy)
@example(b"\x1f\x8b\x08\x00\xcc{rrrrrrr\xfd\xdbl\x02\x00\x00\x00l\x02\x00\x00\x00")  # bad deflate: zlib.error
def test_idx(data: bytes) -> None:
    IDX.check(data)


@given(LST.strategy)
@example(b"0\tnan\ta/0.png\n")  # was ValueError (int(nan)) in class_names_from_items
@example(b"0\tinf\ta/0.png\n")  # was OverflowError
@example(b"0\t0\ta/0.\x00ng\n")  # NUL in the path: was ValueError from os.stat
def test_lst(data: bytes) -> None:
    LST.check(data)


@given(MANIFEST.strategy)
@example((b"\x97", None))  # not UTF-8: was UnicodeDecodeError
@example((b"[" * 100_000, None))  # was RecursionError
@example((b'{"source-ref": "a/0.png", "class": ' + b"9" * 5000 + b"}", None))  # was ValueError (int digits)
@example((b'{"source-ref": "a/0.png", "class": ' + b"9" * 400 + b"}", None))  # was OverflowError in float()
@example((b'{"source-ref": "a/0.png", "class": NaN}', None))  # was accepted as a label
@example((b'{"source-ref": "a/\\u0000.png", "class": 1}', None))  # NUL in the path: was ValueError from os.stat
def test_augmented_manifest(case: tuple[bytes, list[str] | None]) -> None:
    MANIFEST.check(case)
