"""Run the model server: HTTP (uvicorn) and gRPC in one event loop over shared engines.

SIGTERM or SIGINT stops both listeners from accepting, lets in-flight requests finish (up to
``server.shutdown_grace_s``), then unloads the models.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Generator
from pathlib import Path
from types import FrameType

import uvicorn

from shoplm.config import ConfigError, ServeConfig, load_serve_config
from shoplm.serving import logs
from shoplm.serving.admin import apply_reload
from shoplm.serving.app import build_state, create_app
from shoplm.serving.errors import ServingError
from shoplm.serving.kserve.grpc_server import create_grpc_server
from shoplm.serving.state import ServerState

logger = logging.getLogger(__name__)


class ListenError(RuntimeError):
    """A listener could not open its port; the message names the address."""


class _HttpServer(uvicorn.Server):
    """uvicorn's server, telling us when a signal asks it to stop."""

    def __init__(self, config: uvicorn.Config, stopping: asyncio.Event) -> None:
        super().__init__(config)
        self._stopping = stopping

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self._stopping.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # uvicorn re-raises the signal after its shutdown, killing the process before the gRPC
        # server drains and the models unload; we handle the signal and exit normally instead.
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.handle_exit, sig, None)
        try:
            yield
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)


async def serve(config: ServeConfig, config_path: Path | None = None) -> None:
    """Serve until a signal arrives; models load in the background after the ports open."""
    logs.configure(config.server.log_level)
    state = build_state(config, config_path)
    app = create_app(state, manage_models=False)
    stopping = asyncio.Event()
    http = _HttpServer(
        uvicorn.Config(
            app,
            host=config.server.host,
            port=config.server.port,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=int(config.server.shutdown_grace_s) or None,
            lifespan="on",
        ),
        stopping,
    )
    grpc_server = None
    if config.server.grpc_port:
        try:
            grpc_server = create_grpc_server(state, config.server.host, config.server.grpc_port)
        except RuntimeError as error:  # grpc's way of saying the port is taken or the host is not ours
            raise ListenError(
                f"cannot listen for gRPC on {config.server.host}:{config.server.grpc_port} (in use, or not an "
                "address of this machine); pick another --grpc-port, or 0 for no gRPC"
            ) from error
        await grpc_server.start()
        logger.info("grpc listening", extra={"host": config.server.host, "port": config.server.grpc_port})
    loading = asyncio.create_task(state.registry.load_startup_models())
    watching = asyncio.create_task(watch_config(state)) if config.server.watch_config and config_path else None

    async def stop_grpc() -> None:
        await stopping.wait()
        if grpc_server is not None:
            await grpc_server.stop(config.server.shutdown_grace_s)

    grpc_stopper = asyncio.create_task(stop_grpc())
    try:
        await http.serve()
    finally:
        stopping.set()
        await grpc_stopper
        for task in (loading, watching):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await state.registry.close()
        logger.info("server stopped")


async def watch_config(state: ServerState) -> None:
    """Reload when the config file changes (polling its modification time)."""
    assert state.config_path is not None
    path = state.config_path
    seen = path.stat().st_mtime_ns
    while True:
        await asyncio.sleep(state.config.server.watch_interval_s)
        try:
            modified = path.stat().st_mtime_ns
        except OSError:
            continue  # an editor replacing the file; look again next time
        if modified == seen:
            continue
        seen = modified
        try:
            summary = await apply_reload(state, load_serve_config(path))
        except (ConfigError, ServingError, OSError) as error:
            logger.error("config reload failed; still serving the previous config", extra={"error": str(error)})
            continue
        logger.info("config reloaded", extra=summary)


def run(config: ServeConfig, config_path: Path | None = None) -> None:
    """Blocking entry point used by ``shoplm serve``.

    The event loop is uvloop's (installed with uvicorn[standard]): per request it spends a
    fraction of the standard loop's CPU, which on a small machine is CPU the models get back.
    """
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(serve(config, config_path))


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # a platform without uvloop: the standard loop
        return None
    return uvloop.new_event_loop
