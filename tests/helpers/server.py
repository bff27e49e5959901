"""Start a real ``shoplm serve`` process on free ports and wait until it is ready."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml

# The key of the API-key-protected server that several test modules share.
KEYED_API_KEY = "kserve-test-key"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_ready(
    url: str, process: subprocess.Popen[bytes], timeout_s: float, log_text: Callable[[], str] = lambda: ""
) -> None:
    """Poll ``url`` until it answers 200; fail early, with the log's tail, if the process exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log_text()[-4000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"server not ready after {timeout_s} s:\n{log_text()[-4000:]}")


class ServerProcess:
    """A model server subprocess with its config, ports and log file."""

    def __init__(self, workdir: Path, config: dict[str, Any], env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.grpc_port = free_port()
        self.config_path = workdir / "serve.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = workdir / "server.log"
        self.env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def http_address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://{self.http_address}"

    @property
    def grpc_address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def start(self, timeout_s: float = 180.0, ready_path: str = "/v2/health/ready") -> ServerProcess:
        """Start the process and wait until ``ready_path`` answers 200."""
        command = [
            sys.executable, "-m", "shoplm", "serve", "--config", str(self.config_path),
            "--port", str(self.port), "--grpc-port", str(self.grpc_port),
        ]
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        self.wait_ready(timeout_s, ready_path)
        return self

    def wait_ready(self, timeout_s: float, ready_path: str = "/v2/health/ready") -> None:
        assert self.process is not None
        wait_until_ready(f"{self.http_url}{ready_path}", self.process, timeout_s, self.log_text)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def terminate(self, timeout_s: float = 60.0) -> int:
        """Send SIGTERM and wait; returns the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return int(self.process.returncode)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.terminate()
