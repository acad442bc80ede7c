"""One exception tree for all of Tailor.

Every error knows how it surfaces: the CLI exit code, the HTTP status of the REST API and the error code that
the SageMaker-compatible API puts in ``__type`` / ``x-amzn-ErrorType``. Each surface translates them in exactly
one place (``tailor.cli.main`` and ``tailor.api.errors``); nothing else catches ``TailorError`` to print it.
"""

from __future__ import annotations

from typing import ClassVar


class TailorError(Exception):
    """Base of every error Tailor raises on purpose. ``str(err)`` is a one-line message for a person."""

    exit_code: ClassVar[int] = 1
    http_status: ClassVar[int] = 500
    code: ClassVar[str] = "InternalFailure"
    #: Client errors may show their message; server errors hide internals behind a generic line.
    expose: ClassVar[bool] = True

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ValidationError(TailorError):
    """Bad input from the caller: a flag, a hyperparameter, a request field."""

    exit_code = 2
    http_status = 400
    code = "ValidationException"


class DataError(ValidationError):
    """A data file that cannot be read as what it claims to be (corrupt RecordIO, IDX, .lst, image)."""

    code = "ValidationException"

    def __init__(self, message: str, *, path: object | None = None, where: str | None = None) -> None:
        parts = [str(path)] if path is not None else []
        if where:
            parts.append(where)
        prefix = ": ".join([", ".join(parts)]) if parts else ""
        super().__init__(f"{prefix}: {message}" if prefix else message)
        self.path = path
        self.where = where


class NotFoundError(TailorError):
    exit_code = 3
    http_status = 404
    code = "ResourceNotFound"


class ConflictError(TailorError):
    """The resource exists already or is in a state that forbids the action."""

    exit_code = 4
    http_status = 409
    code = "ResourceInUse"


class LimitExceededError(TailorError):
    exit_code = 4
    http_status = 429
    code = "ResourceLimitExceeded"


class StorageError(TailorError):
    """The object store failed (unreachable S3 server, disk full, permission denied)."""

    exit_code = 5
    http_status = 502
    code = "InternalFailure"


class AuthError(TailorError):
    exit_code = 6
    http_status = 403
    code = "AccessDeniedException"


class UnrecognizedClientError(AuthError):
    code = "UnrecognizedClientException"


class InvalidSignatureError(AuthError):
    code = "InvalidSignatureException"


class AccessDeniedError(AuthError):
    code = "AccessDeniedException"


class PayloadTooLargeError(ValidationError):
    http_status = 413
    code = "ValidationError"


class ControlPayloadTooLargeError(PayloadTooLargeError):
    """A control-plane body over its limit: SageMaker's control plane knows no ``ValidationError`` code (that is
    the runtime's), so boto3 sees its usual ``ValidationException``."""

    code = "ValidationException"


class UnsupportedMediaTypeError(ValidationError):
    http_status = 415
    code = "ValidationError"


class ModelError(TailorError):
    """The model failed on a request (SageMaker's 424 ModelError)."""

    exit_code = 7
    http_status = 424
    code = "ModelError"


class ThrottlingError(TailorError):
    exit_code = 8
    http_status = 429
    code = "ThrottlingException"


class ServiceUnavailableError(TailorError):
    exit_code = 8
    http_status = 503
    code = "ServiceUnavailable"


class InternalError(TailorError):
    exit_code = 1
    http_status = 500
    code = "InternalFailure"
    expose = False


class AlgorithmError(TailorError):
    """The training algorithm failed; the message becomes the job's FailureReason."""

    exit_code = 9
    http_status = 500
    code = "InternalFailure"


# FailureReason prefixes of a training job, in SageMaker's words: the algorithm's own failure, or the platform's
# (no capacity for the instances; the infrastructure lost them). A job's failure file may start with a platform
# prefix; anything else is the algorithm's and gets ALGORITHM_FAILURE.
ALGORITHM_FAILURE = "AlgorithmError: "
CAPACITY_FAILURE = "CapacityError: "
PLATFORM_FAILURE = "InternalServerError: "


# What a client reads when a server error must not show its message (it may name paths or hosts of the server).
INTERNAL_MESSAGE = "An internal error occurred; see the server log."


def public_message(err: TailorError, status: int | None = None) -> str:
    """The message a client may read for ``err`` answered with ``status`` (default: its own).

    Client errors (4xx) and "try again" (503) show their message unless the error says not to; any other server
    error shows only that one happened. Every surface that answers a client (REST, the SageMaker protocol, the
    runtime invocation route, the model worker) words it through here, so a 5xx reads the same everywhere.
    """
    status = status or err.http_status
    return err.message if err.expose and (status < 500 or status == 503) else INTERNAL_MESSAGE
