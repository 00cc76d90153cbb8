"""`pollama serve`: build the app with its services and run it with uvicorn on OLLAMA_HOST."""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
from types import FrameType

import uvicorn

from pollama import __version__
from pollama.config import Config
from pollama.registry.auth import ensure_keypair, key_path
from pollama.server.app import create_app
from pollama.server.shutdown import Shutdown

log = logging.getLogger("pollama.server.run")


def _log_level(config: Config) -> int:
    if config.debug >= 1:
        return logging.DEBUG
    return logging.INFO


def _rpc_problems(config: Config) -> list[str]:
    """OLLAMA_RPC_SERVERS needs a llama.cpp built with RPC; say how each worker is doing."""
    from pollama.engine import rpc

    reason = rpc.library_check()
    if reason:
        return [f"OLLAMA_RPC_SERVERS is set, but {reason}"]
    for endpoint in config.rpc_servers:
        try:
            info = rpc.probe(endpoint, timeout=2.0)
        except rpc.WorkerUnavailable as err:
            log.warning("RPC worker %s: %s; models load without it while it stays so",
                        endpoint, err.reason)
            continue
        log.info("RPC worker %s: %d device(s), %d MiB free", endpoint, len(info.memory),
                 info.free >> 20)
    return []


def run_server(config: Config | None = None) -> None:
    """Serve until SIGINT/SIGTERM; loaded runners are stopped on the way out."""
    config = config or Config.from_env()
    logging.basicConfig(level=_log_level(config), stream=sys.stderr,
                        format="time=%(asctime)s level=%(levelname)s source=%(name)s "
                               "msg=%(message)s")
    problems = config.serve_errors()
    if config.rpc_servers and not problems:
        problems = _rpc_problems(config)
    if problems:
        for problem in problems:
            print(f"Error: {problem}", file=sys.stderr)
        raise SystemExit(1)
    key = key_path(config.home)
    if not key.exists():
        print(f"Couldn't find '{key}'. Generating new private key.", file=sys.stderr)
        public = ensure_keypair(config.home)
        print(f"Your new public key is: \n\n{public}\n", file=sys.stderr)
    app = create_app(config)
    log.info("Listening on %s:%d (version %s)", config.host.bind_host, config.host.port,
             __version__)
    server = _Server(uvicorn.Config(
        app, host=config.host.bind_host, port=config.host.port,
        log_level="debug" if config.debug else "warning", access_log=config.debug > 0,
        timeout_graceful_shutdown=5), app.state.pollama.shutdown)
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises a caught SIGINT at exit
        server.run()


class _Server(uvicorn.Server):
    """uvicorn's server, which also ends the requests in flight as soon as a signal asks it to
    stop: uvicorn alone waits for open streams until its graceful timeout, then cancels them."""

    def __init__(self, config: uvicorn.Config, shutdown: Shutdown) -> None:
        super().__init__(config)
        self._shutdown = shutdown

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if not self.should_exit:
            log.info("received %s, shutting down", signal.Signals(sig).name)
        super().handle_exit(sig, frame)
        self._shutdown.begin_threadsafe()
