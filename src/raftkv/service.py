"""Running one member as a process: server plus HTTP API, stopped by SIGINT/SIGTERM.

Exit codes: 0 after a clean stop (signal, or this member was removed from the
cluster), 1 if the member could not start (the reason is logged), 2 after a fatal
error while running (a storage failure, the raft node failing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from typing import Final

from raftkv.cluster import format_address
from raftkv.http_api import HttpApi
from raftkv.http_api import StartupError as HttpStartupError
from raftkv.server import RaftKVServer, ServerConfig, StartupError

__all__ = ["PARENT_ENV", "run_member"]

log: Final = logging.getLogger("raftkv")

#: Environment variable naming a process id: the member stops when that process is
#: gone (the demo and the tests set it, so that no child outlives them).
PARENT_ENV: Final = "RAFTKV_EXIT_WITH_PARENT"


async def _parent_gone(pid: int) -> None:
    """Return once ``pid`` is no longer our parent (it died and we were re-parented)."""
    while os.getppid() == pid:
        await asyncio.sleep(0.5)


async def run_member(cfg: ServerConfig, *, access_log: bool = False) -> int:
    """Run a member until a signal or until it stops on its own; returns the exit code."""
    server = RaftKVServer(cfg)
    api = HttpApi(server, access_log=access_log)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        try:
            await server.start()
            await api.start(cfg.http)
        except (StartupError, HttpStartupError) as err:
            log.critical("member %d cannot start: %s", cfg.id, err)
            return 1
        log.info(
            "member %d running: peers on %s, HTTP on %s, data in %s",
            cfg.id,
            format_address(cfg.listen_peer or cfg.peer_address),
            server.advertise_http,
            cfg.data_dir,
        )
        waits: list[asyncio.Future[object]] = [
            asyncio.ensure_future(stop.wait()),
            asyncio.ensure_future(server.done.wait()),
        ]
        parent = os.environ.get(PARENT_ENV, "")
        if parent.isdigit():
            waits.append(asyncio.ensure_future(_parent_gone(int(parent))))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        if stop.is_set():
            log.info("member %d: signal received, shutting down", cfg.id)
        elif not server.done.is_set():
            log.warning("member %d: parent process %s is gone, shutting down", cfg.id, parent)
        return server.exit_code
    finally:
        await api.stop()
        await server.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
        log.info("member %d stopped", cfg.id)
