"""Dependencies shared by every route: the Tailor container and the authorization hook.

Every route declares ``Depends(require("sagemaker:<Action>", resource))``. The default authorizer allows
everything; the auth module replaces ``app.state.authorizer`` with one that checks access keys and policies.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from fastapi import Body, Query, Request
from fastapi.responses import StreamingResponse

from tailor.auth.policy import RUN_CUSTOM_CODE
from tailor.core import Tailor
from tailor.resources import arn
from tailor.storage import check_remote_uris


class Authorizer(Protocol):
    def authorize(self, request: Request, action: str, resource_arn: str | None) -> Any: ...

    def allows(self, request: Request, action: str, resource_arn: str | None) -> bool: ...


class AllowAll:
    """The authorizer until the auth module installs the real one."""

    def authorize(self, request: Request, action: str, resource_arn: str | None) -> None:
        return None

    def allows(self, request: Request, action: str, resource_arn: str | None) -> bool:
        return True


def get_tailor(request: Request) -> Tailor:
    return request.app.state.tailor


def require(action: str, resource: Callable[[Request], str | None] | None = None) -> Callable[[Request], Any]:
    """A FastAPI dependency asking the app's authorizer whether this request may do ``action`` on a resource."""

    def dependency(request: Request) -> Any:
        arn = resource(request) if resource is not None else None
        return request.app.state.authorizer.authorize(request, action, arn)

    dependency.__name__ = f"require_{action.replace(':', '_')}"
    return dependency


def path_arn(resource_type: str) -> Callable[[Request], str]:
    """A ``require`` resource: the ARN of the ``resource_type`` named in the path (``{name}``)."""

    def resource(request: Request) -> str:
        s = request.app.state.settings
        return arn(s.region, s.account_id, resource_type, request.path_params["name"])

    resource.__name__ = f"{resource_type.replace('-', '_')}_arn"
    return resource


training_job_arn = path_arn("training-job")


def remote_spec(spec: dict[str, Any] = Body(...)) -> dict[str, Any]:
    """A request body (CreateTrainingJob, CreateModel, ... shapes) whose URIs obey the remote-caller policy:
    ``s3://bucket/key`` only (``tailor.storage.check_remote_uri``). Solved after the route's ``require``."""
    check_remote_uris(spec)
    return spec


def own_code_grant(request: Request) -> Callable[[str], Any]:
    """For CreateTrainingJob on a remote surface: own code also needs ``tailor:RunCustomCode`` on the job."""
    return lambda arn: request.app.state.authorizer.authorize(request, RUN_CUSTOM_CODE, arn)


def list_filters(
    NameContains: str | None = Query(None),
    StatusEquals: str | None = Query(None),
    CreationTimeAfter: str | None = Query(None),
    CreationTimeBefore: str | None = Query(None),
    LastModifiedTimeAfter: str | None = Query(None),
    LastModifiedTimeBefore: str | None = Query(None),
    SortBy: str | None = Query(None),
    SortOrder: str | None = Query(None),
    MaxResults: int | None = Query(None),
    NextToken: str | None = Query(None),
) -> dict[str, Any]:
    """The List* query parameters, under SageMaker's names, as given (unset ones left to the service's
    defaults); a service refuses a filter it does not support with a ValidationError."""
    return {k: v for k, v in locals().items() if v is not None}


def follow_log(read: Callable[[int], dict[str, Any]], offset: int) -> StreamingResponse:
    """A log followed as text/plain: ``read(offset)`` pages (``{Text, NextOffset, Complete}``) until the log is
    complete (the job ended, the endpoint was deleted) or the client leaves; polled every 0.5 s when idle."""

    async def stream() -> AsyncIterator[str]:
        pos = offset
        while True:
            chunk = await asyncio.to_thread(read, pos)
            pos = chunk["NextOffset"]
            if chunk["Text"]:
                yield chunk["Text"]
            elif chunk["Complete"]:
                return
            else:
                await asyncio.sleep(0.5)

    return StreamingResponse(stream(), media_type="text/plain; charset=utf-8")
