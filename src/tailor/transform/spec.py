"""CreateTransformJob's request, validated once for every surface, with what Tailor supports said plainly.

Supported (botocore's ``CreateTransformJob`` members, SageMaker's meaning):
- ``TransformInput``: ``S3DataType`` ``S3Prefix`` (every object under the prefix) or ``ManifestFile`` (a JSON
  array ``[{"prefix": "s3://b/p/"}, "rel/key1", …]``); ``ContentType`` ``application/x-image`` (or
  ``image/jpeg``, ``image/png``) with ``SplitType`` ``None`` (one image per object), or
  ``application/x-recordio`` with ``SplitType`` ``RecordIO`` (each record of a ``.rec`` one image);
  ``CompressionType`` ``None``.
- ``TransformOutput``: ``S3OutputPath``; ``Accept`` ``application/jsonlines`` (``{"prediction": […]}`` per
  record, as the built-in algorithm answers) or ``application/json`` (a bare probability array);
  ``AssembleWith`` ``Line`` or ``None``.
- ``BatchStrategy`` ``MultiRecord`` (default: up to ``MULTI_RECORD_MAX`` records per invocation, within
  ``MaxPayloadInMB``) or ``SingleRecord``; ``MaxConcurrentTransforms`` (invocations in flight per instance);
  ``MaxPayloadInMB`` 1-6 (the model server's 6 MB invocation limit); ``TransformResources.InstanceCount``
  (model workers in parallel, 1-``MAX_INSTANCES``); ``ModelClientConfig`` (timeout and retries per invocation).
Refused with a one-line reason: ``DataProcessing``, ``DataCaptureConfig``, ``ExperimentConfig``, KMS keys,
``Environment``, compressed input, other split types.
"""

from __future__ import annotations

from typing import Any

from tailor.errors import ValidationError
from tailor.resources import check_name
from tailor.storage import parse_uri

IMAGE_TYPES = ("application/x-image", "image/jpeg", "image/png")
RECORDIO = "application/x-recordio"
ACCEPTS = ("application/jsonlines", "application/json")
MAX_PAYLOAD_MB = 6  # the model server's invocation limit (tailor.serving.preprocess.MAX_BODY_BYTES)
MULTI_RECORD_MAX = 64  # records per MultiRecord invocation: ONNX Runtime's throughput is flat above 64 here
MAX_INSTANCES = 8
MAX_CONCURRENT = 256
DEFAULT_CONCURRENT = {"MultiRecord": 4, "SingleRecord": 64}  # enough in flight to keep one worker's batcher full
_REFUSED = {
    "DataProcessing": "input/output filtering and joining (DataProcessing) is not supported: drop it",
    "DataCaptureConfig": "DataCaptureConfig is not supported for transform jobs: drop it",
    "ExperimentConfig": "ExperimentConfig is not supported: drop it",
    "Environment": "Environment is not supported: the built-in model server takes no environment variables",
}
_KNOWN = {
    "TransformJobName",
    "ModelName",
    "MaxConcurrentTransforms",
    "ModelClientConfig",
    "MaxPayloadInMB",
    "BatchStrategy",
    "TransformInput",
    "TransformOutput",
    "TransformResources",
    "Tags",
    *_REFUSED,
}


def parse_transform_spec(raw: dict[str, Any]) -> dict[str, Any]:
    """The request with defaults filled in (what Describe echoes); ValidationError naming the member."""
    if not isinstance(raw, dict):
        raise ValidationError("CreateTransformJob takes a JSON object")
    unknown = sorted(set(raw) - _KNOWN)
    if unknown:
        raise ValidationError(
            f"unknown member(s) {', '.join(unknown)}: CreateTransformJob takes {', '.join(sorted(_KNOWN))}"
        )
    for key, why in _REFUSED.items():
        if raw.get(key):
            raise ValidationError(why)
    strategy = raw.get("BatchStrategy") or "MultiRecord"
    if strategy not in ("MultiRecord", "SingleRecord"):
        raise ValidationError(f"BatchStrategy {strategy!r}: use MultiRecord or SingleRecord")
    spec: dict[str, Any] = {
        "TransformJobName": check_name("TransformJobName", raw.get("TransformJobName")),
        "ModelName": check_name("ModelName", raw.get("ModelName")),
        "BatchStrategy": strategy,
        "MaxConcurrentTransforms": _int(raw, "MaxConcurrentTransforms", 0, MAX_CONCURRENT)
        or DEFAULT_CONCURRENT[strategy],
        "MaxPayloadInMB": _payload(raw.get("MaxPayloadInMB")),
        "ModelClientConfig": _client_config(raw.get("ModelClientConfig") or {}),
        "TransformInput": _input(raw.get("TransformInput")),
        "TransformOutput": _output(raw.get("TransformOutput")),
        "TransformResources": _resources(raw.get("TransformResources")),
    }
    tags = raw.get("Tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, dict) and set(t) <= {"Key", "Value"} for t in tags):
        raise ValidationError("Tags must be a list of {Key, Value} objects")
    if tags:
        spec["Tags"] = tags
    return spec


def _int(obj: dict[str, Any], key: str, low: int, high: int, where: str = "") -> int:
    value = obj.get(key, 0) if obj.get(key) is not None else 0
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValidationError(f"{where}{key} {value!r}: must be an integer {low}..{high}")
    return value


def _payload(value: Any) -> int:
    if value is None or value == 0:
        return MAX_PAYLOAD_MB
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise ValidationError(f"MaxPayloadInMB {value!r}: must be an integer 0..100")
    if value > MAX_PAYLOAD_MB:
        raise ValidationError(
            f"MaxPayloadInMB {value}: Tailor's model server takes at most {MAX_PAYLOAD_MB} MB per invocation; use 1..6"
        )
    return value


def _client_config(cfg: Any) -> dict[str, int]:
    if not isinstance(cfg, dict) or set(cfg) - {"InvocationsTimeoutInSeconds", "InvocationsMaxRetries"}:
        raise ValidationError("ModelClientConfig takes InvocationsTimeoutInSeconds and InvocationsMaxRetries only")
    return {
        "InvocationsTimeoutInSeconds": _int(cfg, "InvocationsTimeoutInSeconds", 0, 3600, "ModelClientConfig.") or 600,
        "InvocationsMaxRetries": _int(cfg, "InvocationsMaxRetries", 0, 3, "ModelClientConfig.") or 0,
    }


def _input(inp: Any) -> dict[str, Any]:
    if not isinstance(inp, dict) or not isinstance(inp.get("DataSource"), dict):
        raise ValidationError("TransformInput.DataSource.S3DataSource is required: {S3DataType, S3Uri}")
    src = inp["DataSource"].get("S3DataSource")
    if not isinstance(src, dict) or not isinstance(src.get("S3Uri"), str):
        raise ValidationError("TransformInput.DataSource.S3DataSource.S3Uri is required: an s3:// prefix")
    data_type = src.get("S3DataType", "S3Prefix")
    if data_type not in ("S3Prefix", "ManifestFile"):
        raise ValidationError(f"S3DataType {data_type!r}: use S3Prefix or ManifestFile")
    parse_uri(src["S3Uri"])
    content_type = str(inp.get("ContentType") or "application/x-image").split(";")[0].strip().lower()
    if content_type not in (*IMAGE_TYPES, RECORDIO):
        raise ValidationError(f"ContentType {content_type!r}: use {', '.join(IMAGE_TYPES)} or {RECORDIO}")
    split = inp.get("SplitType") or ("RecordIO" if content_type == RECORDIO else "None")
    if content_type == RECORDIO and split != "RecordIO":
        raise ValidationError(f"ContentType {RECORDIO} needs SplitType RecordIO (each record one image)")
    if content_type != RECORDIO and split != "None":
        raise ValidationError(f"SplitType {split!r}: image objects hold one image each; use SplitType None")
    compression = inp.get("CompressionType") or "None"
    if compression != "None":
        raise ValidationError(f"CompressionType {compression!r}: only None is supported (store images uncompressed)")
    return {
        "DataSource": {"S3DataSource": {"S3DataType": data_type, "S3Uri": src["S3Uri"]}},
        "ContentType": content_type,
        "CompressionType": "None",
        "SplitType": split,
    }


def _output(out: Any) -> dict[str, Any]:
    if not isinstance(out, dict) or not isinstance(out.get("S3OutputPath"), str):
        raise ValidationError("TransformOutput.S3OutputPath is required: the s3:// prefix the .out files go to")
    parse_uri(out["S3OutputPath"])
    if out.get("KmsKeyId"):
        raise ValidationError("TransformOutput.KmsKeyId is not supported: Tailor does not encrypt with KMS")
    accept = str(out.get("Accept") or "application/jsonlines").split(";")[0].strip().lower()
    if accept not in ACCEPTS:
        raise ValidationError(f"Accept {accept!r}: use {' or '.join(ACCEPTS)}")
    assemble = out.get("AssembleWith") or "Line"
    if assemble not in ("None", "Line"):
        raise ValidationError(f"AssembleWith {assemble!r}: use None or Line")
    return {"S3OutputPath": out["S3OutputPath"], "Accept": accept, "AssembleWith": assemble}


def _resources(res: Any) -> dict[str, Any]:
    if not isinstance(res, dict) or not isinstance(res.get("InstanceType"), str):
        raise ValidationError("TransformResources.InstanceType is required (any ml.* type; instances run here)")
    if res.get("VolumeKmsKeyId"):
        raise ValidationError("TransformResources.VolumeKmsKeyId is not supported: Tailor does not encrypt with KMS")
    count = res.get("InstanceCount", 1)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_INSTANCES:
        raise ValidationError(f"TransformResources.InstanceCount {count!r}: must be 1..{MAX_INSTANCES} (model workers)")
    return {"InstanceType": res["InstanceType"], "InstanceCount": count}
