"""One request-body limit for the whole control plane.

Every route but InvokeEndpoint is control plane: REST under /api/v1, SageMaker's JSON protocol on ``POST /``,
the console's JSON routes, /auth/tokens. Their requests are small (a CreateTrainingJob with 100 hyperparameters
of 256-character values is ~30 KB), so ``ControlBodyLimit``, the outermost middleware, reads each such body up
to ``MAX_CONTROL_BODY_BYTES`` before authentication or routing and answers 413 past it, signed or not, with or
without Content-Length. InvokeEndpoint carries images (SageMaker's limit is 6 MB) and bounds its own body.
"""

from __future__ import annotations

import re
from typing import Any

from tailor.api.errors import aws_error
from tailor.asgi import content_length, read_body, replay
from tailor.errors import ControlPayloadTooLargeError, PayloadTooLargeError

MAX_CONTROL_BODY_BYTES = 1024 * 1024
# SageMaker Runtime's InvokeEndpoint path (boto3's sagemaker-runtime calls it as is).
INVOCATION_PATH = re.compile(r"^/endpoints/([^/]+)/invocations$")


class ControlBodyLimit:
    """ASGI middleware: control-plane bodies over ``limit`` bytes end in 413 before any other layer runs."""

    def __init__(self, app: Any, limit: int = MAX_CONTROL_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or (scope["method"] == "POST" and INVOCATION_PATH.match(scope["path"])):
            await self.app(scope, receive, send)
            return
        try:
            body = await read_body(receive, content_length(scope["headers"]), self.limit)
        except PayloadTooLargeError as err:
            await aws_error(ControlPayloadTooLargeError(err.message), rest_envelope=True)(scope, receive, send)
            return
        await self.app(scope, replay(body, receive), send)
