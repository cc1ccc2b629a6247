"""The errors raftkv's service layer raises for its HTTP API.

Each carries the HTTP status it maps to; the API answers ``{"error": message}`` (plus
``"retryable": true`` when the request certainly had no effect, so a client may send
it again to any member).
"""

from __future__ import annotations

__all__ = [
    "APIError",
    "BadRequest",
    "Conflict",
    "Gone",
    "NotFound",
    "TooLarge",
    "Unavailable",
]


class APIError(Exception):
    """Base: an answer other than success, with its HTTP status."""

    status = 500

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


class BadRequest(APIError):
    status = 400


class NotFound(APIError):
    status = 404


class TooLarge(APIError):
    status = 413


class Conflict(APIError):
    status = 409


class Gone(APIError):
    """This member was removed from the cluster and serves nothing any more."""

    status = 410


class Unavailable(APIError):
    """No leader, a timeout, or the member is shutting down."""

    status = 503
