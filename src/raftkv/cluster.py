"""Parsing and checking of the identifiers raftkv takes from people: member ids, host:port
addresses, ``--cluster`` specs and cluster ids.

Every parser raises :class:`ValueError` with a message fit to show the user as is (the
CLI prints it after ``error:``, the HTTP API returns it as a 400), so callers never have
to explain a bad value themselves.
"""

from __future__ import annotations

import hashlib
import ipaddress
from typing import Final

__all__ = [
    "DEFAULT_CLUSTER_TOKEN",
    "MAX_MEMBER_ID",
    "Address",
    "format_address",
    "format_cluster",
    "parse_address",
    "parse_cluster",
    "parse_cluster_id",
    "parse_member_id",
]

Address = tuple[str, int]

#: Ids at and above this are raft's local targets (LOCAL_APPLY_THREAD, LOCAL_APPEND_THREAD),
#: which a member can never use.
MAX_MEMBER_ID: Final = 2**64 - 3

#: The cluster id when ``--cluster-id`` is not given is derived from this token.
DEFAULT_CLUSTER_TOKEN: Final = "raftkv"

_MAX_HOST_LEN: Final = 253


def parse_member_id(value: object, *, what: str = "member id") -> int:
    """A member id from a CLI string, a URL path segment or a JSON number.

    Accepts decimal integers in [1, 2**64-3] (``0`` is raft's "none", the top two values
    are reserved for raft's local targets). JSON booleans are refused even though Python
    counts them as ints.
    """
    if isinstance(value, bool):
        raise ValueError(f"{what} must be an integer, not a boolean")
    if isinstance(value, int):
        n = value
    elif isinstance(value, str):
        s = value.strip()
        if not s.isdigit() or not s.isascii():
            raise ValueError(f"{what} must be a positive decimal integer, got {value!r}")
        if len(s) > 20:
            raise ValueError(f"{what} {value!r} is out of range")
        n = int(s)
    else:
        raise ValueError(f"{what} must be an integer, got {type(value).__name__}")
    if not 1 <= n <= MAX_MEMBER_ID:
        raise ValueError(f"{what} must be between 1 and {MAX_MEMBER_ID}, got {n}")
    return n


def parse_address(text: object, *, what: str = "address", allow_port_zero: bool = False) -> Address:
    """``host:port`` (or ``[v6]:port``, optionally prefixed ``http://`` / ``tcp://``).

    The host may be a name or an IP literal; the port must be 1..65535 (0 too with
    ``allow_port_zero``, meaning "any free port").
    """
    if not isinstance(text, str):
        raise ValueError(f"{what} must be a string like 127.0.0.1:7001")
    s = text.strip()
    for scheme in ("http://", "tcp://"):
        if s.lower().startswith(scheme):
            s = s[len(scheme) :]
            break
    else:
        if "://" in s:
            raise ValueError(f"{what} {text!r}: only http:// or tcp:// (or no scheme) is supported")
    s = s.rstrip("/")
    if s.startswith("["):
        host, sep, rest = s[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValueError(f"{what} {text!r} is not of the form [ipv6]:port")
        port_s = rest[1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{what} {text!r}: {host!r} is not an IPv6 address") from None
    else:
        host, sep, port_s = s.rpartition(":")
        if not sep:
            raise ValueError(f"{what} {text!r} has no port (want host:port)")
        if ":" in host:
            raise ValueError(f"{what} {text!r}: write IPv6 hosts in brackets, [::1]:7001")
    if not host:
        raise ValueError(f"{what} {text!r} has no host (want host:port)")
    if len(host) > _MAX_HOST_LEN or any(c.isspace() or c in "/?#@" for c in host):
        raise ValueError(f"{what} {text!r}: {host!r} is not a valid host")
    if not port_s.isdigit() or not port_s.isascii() or len(port_s) > 5:
        raise ValueError(f"{what} {text!r}: port {port_s!r} is not a number")
    port = int(port_s)
    if not (0 if allow_port_zero else 1) <= port <= 65535:
        raise ValueError(f"{what} {text!r}: port {port} is out of range")
    return host, port


def format_address(addr: Address) -> str:
    """``host:port``, with brackets around an IPv6 host."""
    host, port = addr
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def parse_cluster(text: str) -> dict[int, Address]:
    """``1=127.0.0.1:7001,2=127.0.0.1:7002,...`` → ``{1: ("127.0.0.1", 7001), ...}``.

    Ids must be unique, and so must addresses.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("cluster must list members as ID=HOST:PORT,ID=HOST:PORT,...")
    out: dict[int, Address] = {}
    seen: dict[Address, int] = {}
    for part in text.split(","):
        item = part.strip()
        if not item:
            raise ValueError(f"cluster {text!r} has an empty member entry")
        ident, sep, addr_s = item.partition("=")
        if not sep:
            raise ValueError(f"cluster entry {item!r} is not of the form ID=HOST:PORT")
        mid = parse_member_id(ident, what=f"member id in cluster entry {item!r}")
        addr = parse_address(addr_s, what=f"peer address of member {mid}")
        if mid in out:
            raise ValueError(f"member id {mid} appears twice in the cluster")
        if addr in seen:
            raise ValueError(
                f"members {seen[addr]} and {mid} share the peer address {format_address(addr)}"
            )
        out[mid] = addr
        seen[addr] = mid
    return out


def format_cluster(members: dict[int, Address]) -> str:
    """The inverse of :func:`parse_cluster` (ids ascending)."""
    return ",".join(f"{i}={format_address(members[i])}" for i in sorted(members))


def parse_cluster_id(text: str | None) -> int:
    """A cluster id: an integer (decimal or 0x-hex) or any other token, hashed to 64 bits.

    Peers refuse connections from another cluster id, so two clusters that share hosts
    cannot mix by accident. ``None`` gives the default cluster's id.
    """
    if text is None:
        text = DEFAULT_CLUSTER_TOKEN
    s = text.strip()
    if not s:
        raise ValueError("cluster id must not be empty")
    try:
        n = int(s, 16) if s.lower().startswith("0x") else int(s, 10)
    except ValueError:
        digest = hashlib.blake2b(s.encode("utf-8"), digest_size=8).digest()
        return int.from_bytes(digest, "big") or 1
    if not 1 <= n < 2**64:
        raise ValueError(f"cluster id {text!r} must be between 1 and 2**64-1")
    return n
