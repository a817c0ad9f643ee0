"""Flywheel's error hierarchy, and its one mapping to HTTP.

    FlywheelError
    ├── ConfigError                 config file invalid (names the key and the file)
    ├── StoreError                  the database refused or is unreachable
    │   └── RowsRejected            the database is up but refused these rows (their values)
    └── ApiError                    answered to the client in OpenAI's error shape
        ├── InternalError           500 a bug of ours met the request (logged with its id)
        ├── InvalidRequest          400 malformed JSON, non-object body, missing field
        ├── AuthenticationFailed    401 unknown API key; expired or forged feedback token
        ├── PermissionDenied        403 key lacks the route's scope; another interaction's token
        ├── NotFound                404 no such interaction (feedback, admin API)
        ├── ModelNotFound           404 requested model is not configured
        ├── RequestTimeout          408 body not received within the read deadline
        ├── PayloadTooLarge         413 body over server.max_body_bytes
        ├── UnsupportedMediaType    415 body is not application/json
        ├── ValidationFailed        422 well-formed JSON with bad fields (each one named)
        ├── Overloaded              503 too many requests in flight: retry shortly
        ├── StoreUnavailable        503 a StoreError left a handler (mapped in http_errors.py)
        └── UpstreamError           502 provider failed (5xx, refused, cut off)
            └── UpstreamTimeout     504 provider did not answer in time

An upstream 4xx is not an error of ours: its body is relayed to the client as is.
"""

from __future__ import annotations

from typing import Any


class FlywheelError(Exception):
    """Base of every error Flywheel raises on purpose."""


class ConfigError(FlywheelError):
    """The configuration cannot be used; the message names the key and the file."""


class StoreError(FlywheelError):
    """The store could not read or write."""


class RowsRejected(StoreError):
    """The store answers but refused the rows themselves (a value it cannot encode or hold);
    writing them again unchanged would fail again, unlike after an outage."""


class ApiError(FlywheelError):
    """An error answered to the client as `{"error": {message, type, param, code}}`."""

    status = 500
    type = "server_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code

    def to_body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class InternalError(ApiError):
    """500: a bug of the gateway's own met this request; the log has it under its id."""

    def __init__(self, interaction_id: str):
        super().__init__(
            f"The gateway failed on this request (interaction {interaction_id}); it is logged."
        )


class InvalidRequest(ApiError):
    status = 400
    type = "invalid_request_error"


class AuthenticationFailed(ApiError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class PermissionDenied(ApiError):
    status = 403
    type = "invalid_request_error"
    code = "insufficient_scope"


class NotFound(ApiError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class ModelNotFound(ApiError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"

    def __init__(self, model: str):
        super().__init__(
            f"The model `{model}` does not exist or is not configured in this gateway.",
            param="model",
        )


class RequestTimeout(ApiError):
    status = 408
    type = "invalid_request_error"
    code = "request_timeout"


class PayloadTooLarge(ApiError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class UnsupportedMediaType(ApiError):
    status = 415
    type = "invalid_request_error"
    code = "unsupported_media_type"


class ValidationFailed(ApiError):
    """The body parsed but its fields do not hold: the message names every bad one."""

    status = 422
    type = "invalid_request_error"
    code = "validation_failed"


class Overloaded(ApiError):
    status = 503
    type = "overloaded_error"
    code = "overloaded"


class StoreUnavailable(ApiError):
    """What the error middleware answers when a `StoreError` leaves a handler (feedback
    writes, the admin API); never on the inference path, which only hands rows to the
    recorder. Handlers let `StoreError` through rather than raise this themselves."""

    status = 503
    type = "server_error"
    code = "store_unavailable"


class UpstreamError(ApiError):
    status = 502
    type = "upstream_error"
    code = "upstream_error"

    def __init__(self, provider: str, detail: str, *, upstream_status: int | None = None):
        super().__init__(f"Upstream provider '{provider}' failed: {detail}")
        self.provider = provider
        self.upstream_status = upstream_status


class UpstreamTimeout(UpstreamError):
    status = 504
    type = "upstream_timeout"
    code = "upstream_timeout"
