"""SageMaker JSON requests on arbitrary bodies and operation names, signed with an admin key, through the real
ASGI app: every answer is below 500 and 4xx answers carry SageMaker's error shape."""

from __future__ import annotations

from hypothesis import example, given

from tests.fuzz.targets import BY_NAME, sagemaker_app

SAGEMAKER = BY_NAME["sagemaker-json"]


def test_valid_request_is_answered() -> None:
    resp = sagemaker_app().post("SageMaker.ListModels", b"{}")
    assert resp.status_code == 200, resp.text
    assert resp.json()["Models"] == []


def test_deeply_nested_body_is_a_serialization_error() -> None:
    resp = sagemaker_app().post("SageMaker.ListModels", b"[" * 100_000)
    assert resp.status_code == 400
    assert resp.json()["__type"] == "SerializationException"


@given(SAGEMAKER.strategy)
@example(("CreateTrainingJob", b"[" * 100_000))  # was 500 (RecursionError)
@example(("ListModels", b'{"MaxResults": ' + b"9" * 5000 + b"}"))  # was 500 (ValueError: int digits)
def test_sagemaker_json(case: tuple[str, bytes]) -> None:
    SAGEMAKER.check(case)
