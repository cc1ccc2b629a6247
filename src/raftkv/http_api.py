"""raftkv's HTTP API (aiohttp).

Every answer is JSON; errors are ``{"error": "..."}`` with the fitting status (400
malformed input, 404 unknown key/member/endpoint, 405 wrong method, 409 membership
conflict, 410 member removed, 413 too large, 503 no leader / timeout / shutting down)
and, when the request certainly had no effect, ``"retryable": true``.

Any member serves any request; there are no redirects. A write is proposed here and
raft forwards it to the leader; it is answered once applied here. A linearizable read
asks the leader (through raft) for a read index and is answered once this member has
applied that far. ``?serializable=true`` reads this member's state as it is.

Routes::

    GET    /kv/{key}[?serializable=true]   → {"key", "value", "encoding", "mod_index", "index"}
    PUT    /kv/{key}   (body = value)       → {"key", "index"}
    DELETE /kv/{key}                        → {"key", "deleted": true, "index"}
    GET    /members                         → {"id", "leader", "applied", "members": [...]}
    POST   /members    {"id", "peer_address", "http_address", "learner"}
    DELETE /members/{id}
    POST   /members/{id}/promote
    POST   /leader     {"id"}
    GET    /status
    GET    /health
    GET    /metrics    (Prometheus text)
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

from raftkv.cluster import Address, format_address, parse_member_id
from raftkv.errors import APIError, BadRequest, TooLarge
from raftkv.kvstore import Member, check_key, parse_member_json
from raftkv.metrics import CONTENT_TYPE

if TYPE_CHECKING:
    from raftkv.server import RaftKVServer

__all__ = ["MAX_JSON_BODY", "HttpApi", "StartupError"]

log: Final = logging.getLogger("raftkv.http")

#: Limit for the JSON bodies of the membership and leader endpoints.
MAX_JSON_BODY: Final = 64 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_KNOWN_METHODS: Final = frozenset(
    ("GET", "HEAD", "PUT", "POST", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE")
)


class StartupError(Exception):
    """The HTTP listener could not start (address in use, ...)."""


def error_response(status: int, message: str, retryable: bool = False) -> web.Response:
    body: dict[str, Any] = {"error": message}
    if retryable:
        body["retryable"] = True
    return web.json_response(body, status=status)


def _parse_bool(name: str, raw: str) -> bool:
    v = raw.strip().lower()
    if v in ("true", "1", "yes", ""):
        return True
    if v in ("false", "0", "no"):
        return False
    raise BadRequest(f"query parameter {name} must be true or false, got {raw!r}")


def _check_query(request: web.Request, allowed: Iterable[str] = ()) -> None:
    allowed_set = set(allowed)
    for name in request.query:
        if name not in allowed_set:
            hint = f" (allowed: {', '.join(sorted(allowed_set))})" if allowed_set else ""
            raise BadRequest(f"unknown query parameter {name!r}{hint}")
    for name in allowed_set:
        if len(request.query.getall(name, [])) > 1:
            raise BadRequest(f"query parameter {name} given more than once")


def _key_of(request: web.Request) -> str:
    key = request.match_info.get("key", "")
    try:
        check_key(key)
    except ValueError as err:
        raise BadRequest(str(err)) from None
    return key


def _value_json(value: bytes) -> tuple[str, str]:
    try:
        return value.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(value).decode("ascii"), "base64"


class HttpApi:
    """The HTTP front of one :class:`~raftkv.server.RaftKVServer`."""

    def __init__(self, server: RaftKVServer, *, access_log: bool = False) -> None:
        self.server = server
        self._access_log = access_log
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self.app = self.make_app()

    def make_app(self) -> web.Application:
        # The value limit is enforced by aiohttp while reading the body (413); JSON
        # endpoints check their own, smaller limit.
        app = web.Application(
            client_max_size=max(self.server.cfg.max_value_size, MAX_JSON_BODY),
            middlewares=[self._middleware],
        )
        r = app.router
        r.add_route("GET", "/kv/{key:.+}", self.get_key)
        r.add_route("PUT", "/kv/{key:.+}", self.put_key)
        r.add_route("DELETE", "/kv/{key:.+}", self.delete_key)
        r.add_route("*", "/kv", self.missing_key)
        r.add_route("*", "/kv/", self.missing_key)
        r.add_route("GET", "/members", self.list_members)
        r.add_route("POST", "/members", self.add_member)
        r.add_route("DELETE", "/members/{id}", self.remove_member)
        r.add_route("POST", "/members/{id}/promote", self.promote_member)
        r.add_route("POST", "/leader", self.transfer_leader)
        r.add_route("GET", "/status", self.status)
        r.add_route("GET", "/health", self.health)
        r.add_route("GET", "/metrics", self.metrics)
        return app

    async def start(self, address: Address) -> None:
        runner = web.AppRunner(
            self.app,
            access_log=logging.getLogger("raftkv.http.access") if self._access_log else None,
            handle_signals=False,
        )
        await runner.setup()
        site = web.TCPSite(runner, address[0], address[1], shutdown_timeout=1.0)
        try:
            await site.start()
        except OSError as err:
            await runner.cleanup()
            raise StartupError(
                f"cannot listen for HTTP on {format_address(address)}: {err.strerror or err}"
            ) from err
        self._runner = runner
        self._site = site
        log.info("member %d: HTTP API on http://%s", self.server.id, format_address(address))

    @property
    def address(self) -> Address:
        """The bound address (useful with port 0)."""
        runner = self._runner
        if runner is None or not runner.addresses:
            raise RuntimeError("HTTP API not started")
        host, port = runner.addresses[0][:2]
        return str(host), int(port)

    async def stop(self) -> None:
        runner = self._runner
        self._runner = None
        if runner is not None:
            await runner.cleanup()

    # ----------------------------------------------------------------- middleware

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        resp: web.StreamResponse
        try:
            resp = await handler(request)
        except APIError as err:
            resp = error_response(err.status, err.message, err.retryable)
        except web.HTTPException as err:
            if err.status < 400:
                raise
            resp = self._http_error(request, err)
        except asyncio.CancelledError:
            raise
        except Exception as err:
            log.exception(
                "member %d: error handling %s %s", self.server.id, request.method, request.path
            )
            resp = error_response(500, f"internal error: {type(err).__name__}: {err}")
        # Unknown methods share one label value: a client must not be able to grow
        # the metric's label set without bound.
        method = request.method if request.method in _KNOWN_METHODS else "OTHER"
        self.server.m_http.inc(labels=(method, str(resp.status)))
        return resp

    def _http_error(self, request: web.Request, err: web.HTTPException) -> web.Response:
        """aiohttp's own errors (unknown route, wrong method, body too large) as JSON."""
        if isinstance(err, web.HTTPNotFound):
            msg = f"no such endpoint: {request.method} {request.path}"
        elif isinstance(err, web.HTTPMethodNotAllowed):
            allowed = ", ".join(sorted(err.allowed_methods))
            msg = f"method {request.method} not allowed for {request.path} (allowed: {allowed})"
        elif isinstance(err, web.HTTPRequestEntityTooLarge):
            msg = (
                f"request body too large: the limit is {self.server.cfg.max_value_size} bytes "
                "for values"
            )
        else:
            msg = err.reason or str(err)
        resp = error_response(err.status, msg)
        allow = err.headers.get("Allow")
        if allow is not None:
            resp.headers["Allow"] = allow
        return resp

    # -------------------------------------------------------------------- helpers

    async def _json_body(self, request: web.Request) -> Any:
        if request.content_length is not None and request.content_length > MAX_JSON_BODY:
            raise TooLarge(f"JSON body too large: the limit is {MAX_JSON_BODY} bytes")
        raw = await request.content.read(MAX_JSON_BODY + 1)
        if len(raw) > MAX_JSON_BODY:
            raise TooLarge(f"JSON body too large: the limit is {MAX_JSON_BODY} bytes")
        if not raw.strip():
            raise BadRequest("request body must be a JSON object, got nothing")
        try:
            return json.loads(raw)
        except UnicodeDecodeError:
            raise BadRequest("request body is not UTF-8") from None
        except ValueError as err:
            raise BadRequest(f"request body is not valid JSON: {err}") from None

    def _members_json(self) -> list[dict[str, Any]]:
        return [m.to_json() for m in self.server.members()]

    def _member_id(self, request: web.Request) -> int:
        try:
            return parse_member_id(request.match_info["id"])
        except ValueError as err:
            raise BadRequest(str(err)) from None

    # ---------------------------------------------------------------------- keys

    async def get_key(self, request: web.Request) -> web.Response:
        _check_query(request, ("serializable",))
        key = _key_of(request)
        raw = request.query.get("serializable")
        serializable = raw is not None and _parse_bool("serializable", raw)
        item, index = await self.server.get(key, serializable=serializable)
        if item is None:
            return error_response(404, f"key not found: {key}")
        value, encoding = _value_json(item.value)
        return web.json_response(
            {
                "key": key,
                "value": value,
                "encoding": encoding,
                "mod_index": item.mod_index,
                "index": index,
            }
        )

    async def put_key(self, request: web.Request) -> web.Response:
        _check_query(request)
        key = _key_of(request)
        limit = self.server.cfg.max_value_size
        if request.content_length is not None and request.content_length > limit:
            raise TooLarge(f"value of {request.content_length} bytes exceeds the limit of {limit}")
        value = await request.read()
        if len(value) > limit:
            raise TooLarge(f"value of {len(value)} bytes exceeds the limit of {limit}")
        res = await self.server.put(key, value)
        return web.json_response({"key": key, "index": res.index})

    async def delete_key(self, request: web.Request) -> web.Response:
        _check_query(request)
        key = _key_of(request)
        res = await self.server.delete(key)
        if not res.found:
            return error_response(404, f"key not found: {key}")
        return web.json_response({"key": key, "deleted": True, "index": res.index})

    async def missing_key(self, request: web.Request) -> web.Response:
        raise BadRequest("missing key: use /kv/{key}")

    # -------------------------------------------------------------------- members

    async def list_members(self, request: web.Request) -> web.Response:
        _check_query(request)
        s = self.server
        return web.json_response(
            {"id": s.id, "leader": s.lead, "applied": s.applied, "members": self._members_json()}
        )

    async def add_member(self, request: web.Request) -> web.Response:
        _check_query(request)
        body = await self._json_body(request)
        try:
            mid, peer, http, learner = parse_member_json(body)
        except ValueError as err:
            raise BadRequest(str(err)) from None
        member = await self.server.add_member(mid, peer, http, learner)
        return web.json_response(
            {
                "member": member.to_json(),
                "members": self._members_json(),
                "cluster": _cluster_flag(self.server.members()),
            },
            status=201,
        )

    async def remove_member(self, request: web.Request) -> web.Response:
        _check_query(request)
        mid = self._member_id(request)
        await self.server.remove_member(mid)
        return web.json_response({"removed": mid, "members": self._members_json()})

    async def promote_member(self, request: web.Request) -> web.Response:
        _check_query(request)
        mid = self._member_id(request)
        member = await self.server.promote_member(mid)
        return web.json_response({"member": member.to_json(), "members": self._members_json()})

    async def transfer_leader(self, request: web.Request) -> web.Response:
        _check_query(request)
        body = await self._json_body(request)
        if not isinstance(body, dict):
            raise BadRequest('request body must be a JSON object like {"id": 2}')
        unknown = sorted(set(body) - {"id"})
        if unknown:
            raise BadRequest(f"unknown field(s): {', '.join(unknown)}")
        if "id" not in body:
            raise BadRequest("missing field: id")
        try:
            target = parse_member_id(body["id"], what="id")
        except ValueError as err:
            raise BadRequest(str(err)) from None
        lead = await self.server.transfer_leader(target)
        return web.json_response({"leader": lead})

    # --------------------------------------------------------------------- status

    async def status(self, request: web.Request) -> web.Response:
        _check_query(request)
        return web.json_response(await self.server.status())

    async def health(self, request: web.Request) -> web.Response:
        _check_query(request)
        s = self.server
        body = {"id": s.id, "leader": s.lead, "applied": s.applied, "removed": s.removed}
        if s.removed:
            return error_response(410, f"member {s.id} was removed from the cluster")
        if not s.lead:
            return web.json_response({**body, "error": "no leader"}, status=503)
        return web.json_response(body)

    async def metrics(self, request: web.Request) -> web.Response:
        _check_query(request)
        resp = web.Response(text=self.server.metrics.render())
        resp.headers["Content-Type"] = CONTENT_TYPE
        return resp


def _cluster_flag(members: list[Member]) -> str:
    """The ``--cluster`` value a new member should start with."""
    return ",".join(f"{m.id}={m.peer_address}" for m in members)
