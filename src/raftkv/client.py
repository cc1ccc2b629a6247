"""An asyncio client for raftkv's HTTP API (aiohttp).

::

    async with KVClient(["127.0.0.1:8001", "127.0.0.1:8002"]) as c:
        await c.put("greeting", b"hello")
        item = await c.get("greeting")          # {"key", "value": b"hello", "mod_index", ...}
        await c.delete("greeting")

Fail-over: a request goes to the endpoint that answered last; if that endpoint cannot
be reached, or answers 503 with ``"retryable": true`` (the request certainly had no
effect: no leader yet, member shutting down ...), the next endpoint is tried. Any other
answer is final; errors raise :class:`ClientError` with the server's message.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Final
from urllib.parse import quote

import aiohttp
from yarl import URL

from raftkv.cluster import format_address, parse_address

__all__ = ["ClientError", "KVClient", "normalize_endpoint"]

_RETRY_STATUS: Final = 503


class ClientError(Exception):
    """A request failed: ``status`` is the HTTP status (0 if no endpoint answered)."""

    def __init__(
        self, message: str, status: int = 0, endpoint: str = "", retryable: bool = False
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.endpoint = endpoint
        self.retryable = retryable


def normalize_endpoint(text: str) -> str:
    """``host:port`` or ``http://host:port`` → ``http://host:port`` (ValueError if bad)."""
    return "http://" + format_address(parse_address(text, what="endpoint"))


class KVClient:
    """Talks to one or more members; see the module docs for fail-over."""

    def __init__(self, endpoints: Sequence[str], timeout: float = 10.0) -> None:
        if not endpoints:
            raise ValueError("at least one endpoint is needed")
        self.endpoints = [normalize_endpoint(e) for e in endpoints]
        self.timeout = timeout
        self._current = 0
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> KVClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _sess(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        *,
        data: bytes | None = None,
        json_body: Any = None,
        query: dict[str, str] | None = None,
        ok: Sequence[int] = (200, 201),
        endpoint: str | None = None,
    ) -> tuple[int, Any]:
        """Send one request with fail-over; returns (status, decoded JSON or text).

        Statuses in ``ok`` are returned; any other raises :class:`ClientError`.
        ``endpoint`` pins the request to one member (no fail-over).
        """
        session = self._sess()
        order = (
            [normalize_endpoint(endpoint)]
            if endpoint is not None
            else [
                self.endpoints[(self._current + i) % len(self.endpoints)]
                for i in range(len(self.endpoints))
            ]
        )
        last: ClientError | None = None
        body = data
        headers = {}
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        for ep in order:
            url = URL(ep + path, encoded=True)
            if query:
                url = url.with_query(query)
            try:
                async with session.request(method, url, data=body, headers=headers) as resp:
                    status = resp.status
                    raw = await resp.read()
            except (aiohttp.ClientError, TimeoutError, OSError) as err:
                reason = str(err) or type(err).__name__
                last = ClientError(f"cannot reach {ep}: {reason}", 0, ep, retryable=True)
                continue
            payload: Any
            ctype = resp.headers.get("Content-Type", "")
            if ctype.startswith("application/json"):
                try:
                    payload = json.loads(raw)
                except ValueError:
                    payload = raw.decode("utf-8", "replace")
            else:
                payload = raw.decode("utf-8", "replace")
            if status in ok:
                if endpoint is None:
                    self._current = self.endpoints.index(ep)
                return status, payload
            msg = payload.get("error") if isinstance(payload, dict) else None
            retryable = isinstance(payload, dict) and payload.get("retryable") is True
            err_ = ClientError(f"{msg or payload or 'HTTP ' + str(status)}", status, ep, retryable)
            if status == _RETRY_STATUS and retryable:
                last = err_
                continue
            raise err_
        assert last is not None
        raise last

    # ------------------------------------------------------------------- keys

    @staticmethod
    def _kv_path(key: str) -> str:
        if not key:
            raise ValueError("key must not be empty")
        return "/kv/" + quote(key, safe="")

    async def put(self, key: str, value: bytes, *, endpoint: str | None = None) -> dict[str, Any]:
        _, body = await self.request("PUT", self._kv_path(key), data=value, endpoint=endpoint)
        assert isinstance(body, dict)
        return body

    async def get(
        self, key: str, *, serializable: bool = False, endpoint: str | None = None
    ) -> dict[str, Any] | None:
        """The key's JSON answer with ``value`` decoded to bytes, or None if absent."""
        query = {"serializable": "true"} if serializable else None
        status, body = await self.request(
            "GET", self._kv_path(key), query=query, ok=(200, 404), endpoint=endpoint
        )
        if status == 404:
            return None
        assert isinstance(body, dict)
        value = body.get("value", "")
        if body.get("encoding") == "base64":
            body["value"] = base64.b64decode(value)
        else:
            body["value"] = str(value).encode("utf-8")
        return body

    async def delete(self, key: str, *, endpoint: str | None = None) -> bool:
        """True if the key existed."""
        status, _ = await self.request(
            "DELETE", self._kv_path(key), ok=(200, 404), endpoint=endpoint
        )
        return status == 200

    # ---------------------------------------------------------------- members

    async def members(self, *, endpoint: str | None = None) -> dict[str, Any]:
        _, body = await self.request("GET", "/members", endpoint=endpoint)
        assert isinstance(body, dict)
        return body

    async def add_member(
        self,
        member_id: int,
        peer_address: str,
        http_address: str = "",
        learner: bool = False,
        *,
        endpoint: str | None = None,
    ) -> dict[str, Any]:
        req: dict[str, Any] = {"id": member_id, "peer_address": peer_address, "learner": learner}
        if http_address:
            req["http_address"] = http_address
        _, body = await self.request("POST", "/members", json_body=req, endpoint=endpoint)
        assert isinstance(body, dict)
        return body

    async def remove_member(self, member_id: int, *, endpoint: str | None = None) -> dict[str, Any]:
        _, body = await self.request("DELETE", f"/members/{member_id}", endpoint=endpoint)
        assert isinstance(body, dict)
        return body

    async def promote_member(
        self, member_id: int, *, endpoint: str | None = None
    ) -> dict[str, Any]:
        _, body = await self.request("POST", f"/members/{member_id}/promote", endpoint=endpoint)
        assert isinstance(body, dict)
        return body

    async def transfer_leader(self, member_id: int, *, endpoint: str | None = None) -> int:
        _, body = await self.request(
            "POST", "/leader", json_body={"id": member_id}, endpoint=endpoint
        )
        assert isinstance(body, dict)
        return int(body["leader"])

    # ----------------------------------------------------------------- status

    async def status(self, *, endpoint: str | None = None) -> dict[str, Any]:
        _, body = await self.request("GET", "/status", endpoint=endpoint)
        assert isinstance(body, dict)
        return body

    async def metrics(self, *, endpoint: str | None = None) -> str:
        _, body = await self.request("GET", "/metrics", endpoint=endpoint)
        return str(body)

    async def status_all(self) -> dict[str, dict[str, Any] | ClientError]:
        """Every endpoint's status (or the error it gave), concurrently."""

        async def one(ep: str) -> dict[str, Any] | ClientError:
            try:
                return await self.status(endpoint=ep)
            except ClientError as err:
                return err

        results = await asyncio.gather(*(one(ep) for ep in self.endpoints))
        return dict(zip(self.endpoints, results, strict=True))
