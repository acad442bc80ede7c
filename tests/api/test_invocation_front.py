"""InvokeEndpoint answered in front of FastAPI (``hosting.InvocationFront``): the same authentication (SigV4 and
bearer), the same policy check on the endpoint's ARN and the same error codes, over a real server on loopback."""

from __future__ import annotations

from typing import Any

import boto3
import httpx
import pytest
from botocore.exceptions import ClientError

from tailor.api import hosting
from tailor.auth.keys import KeyStore
from tailor.settings import Settings
from tests.conftest import running_app

PNG = {"Content-Type": "image/png"}


def test_invocations_go_through_the_front_with_auth_and_policy(
    settings: Settings, admin_credentials: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []
    real = hosting.InvocationFront.__call__

    async def counting(self: hosting.InvocationFront, scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope["path"])
        await real(self, scope, receive, send)

    monkeypatch.setattr(hosting.InvocationFront, "__call__", counting)
    keys = KeyStore(settings)

    def policy(resource: str) -> dict[str, Any]:
        statement = {"Effect": "Allow", "Action": "sagemaker:InvokeEndpoint", "Resource": resource}
        return {"Version": "2012-10-17", "Statement": [statement]}

    allowed, other = policy("*"), policy("*:endpoint/x")
    invoker = keys.create("invoker", allowed)
    outsider = keys.create("outsider", other)
    token, _ = keys.issue_token(invoker.info.access_key_id)
    with running_app(settings) as url:
        ep = f"{url}/endpoints/nope/invocations"
        # Unsigned, a bad bearer token, a bad scheme: AWS's auth errors, as before.
        r = httpx.post(ep, content=b"x", headers=PNG)
        assert (r.status_code, r.headers["x-amzn-errortype"]) == (403, "MissingAuthenticationTokenException")
        r = httpx.post(ep, content=b"x", headers={**PNG, "Authorization": "Bearer nope"})
        assert (r.status_code, r.headers["x-amzn-errortype"]) == (403, "UnrecognizedClientException")
        r = httpx.post(ep, content=b"x", headers={**PNG, "Authorization": "Basic abc"})
        assert (r.status_code, r.headers["x-amzn-errortype"]) == (400, "IncompleteSignatureException")
        # A valid token past the policy: the missing endpoint answers SageMaker Runtime's 400 ValidationError.
        r = httpx.post(ep, content=b"x", headers={**PNG, "Authorization": f"Bearer {token}"})
        assert (r.status_code, r.headers["x-amzn-errortype"]) == (400, "ValidationError")
        assert r.json()["message"] == f"Endpoint nope of account {settings.account_id} not found."

        # SigV4 (boto3's sagemaker-runtime signs): the policy decides per endpoint ARN; a wrong secret is refused.
        def code(key_id: str, secret: str) -> tuple[str, int]:
            runtime = boto3.client(
                "sagemaker-runtime",
                endpoint_url=url,
                region_name=settings.region,
                aws_access_key_id=key_id,
                aws_secret_access_key=secret,
            )
            with pytest.raises(ClientError) as exc:
                runtime.invoke_endpoint(EndpointName="nope", Body=b"x", ContentType="image/png")
            return exc.value.response["Error"]["Code"], exc.value.response["ResponseMetadata"]["HTTPStatusCode"]

        assert code(invoker.info.access_key_id, invoker.secret_access_key) == ("ValidationError", 400)
        assert code(outsider.info.access_key_id, outsider.secret_access_key) == ("AccessDeniedException", 403)
        assert code(invoker.info.access_key_id, "wrong" * 8) == ("InvalidSignatureException", 403)
        # Not an invocation path: FastAPI answers (404 for GET on it, the control plane as usual).
        assert httpx.get(ep).status_code in (403, 404, 405)
    assert seen.count("/endpoints/nope/invocations") == 7
