"""SageMaker JSON requests on arbitrary bodies and operation names, signed with an admin key, through the real
ASGI app: every answer is below 500 and 4xx answers carry SageMaker's error shape."""

from __future__ import annotations

from hypothesis import given

from tests.fuzz.targets import BY_NAME, sagemaker_app

SAGEMAKER = BY_NAME["sagemaker-json"]


def test_valid_request_is_answered() -> None:
    resp = sagemaker_app().post("SageMaker.ListModels", b"{}")
    assert resp.status_code == 200, resp.text
    assert resp.json()["Models"] == []


@given(SAGEMAKER.strategy)
def test_sagemaker_json(case: tuple[str, bytes]) -> None:
    SAGEMAKER.check(case)
