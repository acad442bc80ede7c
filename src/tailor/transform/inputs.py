"""What a transform job reads and where each answer goes.

- ``S3Prefix``: every object under the prefix (sorted by key). ``ManifestFile``: the manifest's JSON array,
  ``[{"prefix": "s3://bucket/p/"}, "rel/key1", …]``; its prefix must be an ``s3://`` URI (a manifest is data a
  remote caller controls, so it may not name local paths) and no key may climb out of it.
- Output of an input object at ``<prefix>/<rel>`` is ``<S3OutputPath>/<rel>.out`` (SageMaker's naming), where
  ``<rel>`` is the key relative to the prefix's folder (the prefix up to its last ``/``).
- With ``application/x-recordio`` the ``.idx``, ``.lst`` and ``.classes.json`` files ``tailor data cp`` puts
  beside a ``.rec`` are not inputs (they are index and label files, not records).
- ``class_of``: an input at ``<class>/<file>`` relative to the prefix sits in a class folder, whose name is its
  true class when it is one of the model's class names (the accuracy and confusion matrix of the summary).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tailor.errors import NotFoundError, ValidationError
from tailor.storage import Storage, check_remote_uri, join_uri

SIDECARS = (".idx", ".lst", ".classes.json")


@dataclass(frozen=True)
class InputObject:
    uri: str
    rel: str  # key relative to the prefix's folder: names the output and the class folder


def list_inputs(storage: Storage, spec: dict[str, Any]) -> list[InputObject]:
    src = spec["TransformInput"]["DataSource"]["S3DataSource"]
    if src["S3DataType"] == "ManifestFile":
        objects = _manifest(storage, src["S3Uri"])
    else:
        uri = src["S3Uri"]
        base = uri[: uri.rfind("/") + 1] if "/" in uri.removeprefix("s3://") else uri + "/"
        objects = [
            InputObject(o.uri, o.uri[len(base) :] if o.uri.startswith(base) else o.key) for o in _list(storage, uri)
        ]
    if spec["TransformInput"]["ContentType"] == "application/x-recordio":
        objects = [o for o in objects if not o.rel.endswith(SIDECARS)]
    if not objects:
        raise ValidationError(f"no input objects at {src['S3Uri']}: upload the images first or fix S3Uri")
    return objects


def _list(storage: Storage, uri: str) -> list[Any]:
    try:
        return storage.list(uri)
    except NotFoundError:
        return []


def _manifest(storage: Storage, uri: str) -> list[InputObject]:
    try:
        doc = json.loads(storage.read_bytes(uri))
    except NotFoundError:
        raise ValidationError(f"manifest {uri} does not exist") from None
    except ValueError:
        raise ValidationError(f'manifest {uri} is not JSON: use [{{"prefix": "s3://bucket/p/"}}, "key", …]') from None
    if not (isinstance(doc, list) and doc and isinstance(doc[0], dict) and isinstance(doc[0].get("prefix"), str)):
        raise ValidationError(f'manifest {uri}: expected [{{"prefix": "s3://bucket/p/"}}, "relative/key", …]')
    prefix = check_remote_uri(doc[0]["prefix"], f"manifest {uri}: prefix")
    out = []
    for i, rel in enumerate(doc[1:], 1):
        if not isinstance(rel, str) or not rel or rel.startswith("/"):
            raise ValidationError(f"manifest {uri}: entry {i} must be a key relative to the prefix")
        full = check_remote_uri(
            join_uri(prefix, rel) if not prefix.endswith("/") else prefix + rel, f"manifest {uri}: entry {i}"
        )
        out.append(InputObject(full, rel))
    return out


def output_uri(spec: dict[str, Any], obj: InputObject) -> str:
    return join_uri(spec["TransformOutput"]["S3OutputPath"], obj.rel + ".out")


def class_of(obj: InputObject, class_names: list[str]) -> str | None:
    parts = obj.rel.split("/")
    return parts[-2] if len(parts) >= 2 and parts[-2] in class_names else None
