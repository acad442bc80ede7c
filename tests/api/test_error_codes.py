"""The SageMaker-compatible surfaces answer the error codes botocore's service models list per operation."""

from __future__ import annotations

import botocore.session

from tailor.api.hosting import InvocationError
from tailor.api.sagemaker import OPERATION_ERRORS, OPERATIONS


def test_control_plane_table_is_botocores() -> None:
    model = botocore.session.get_session().get_service_model("sagemaker")
    for name in OPERATIONS:
        listed = {shape.name for shape in model.operation_model(name).error_shapes}
        assert OPERATION_ERRORS.get(name, frozenset()) == listed, name


def test_invoke_endpoint_validation_error_is_botocores() -> None:
    model = botocore.session.get_session().get_service_model("sagemaker-runtime")
    shapes = {
        s.name: s.metadata["error"]["httpStatusCode"] for s in model.operation_model("InvokeEndpoint").error_shapes
    }
    assert shapes[InvocationError.code] == InvocationError.http_status == 400
    assert shapes["ModelError"] == 424
