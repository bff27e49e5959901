"""Requests generated from the server's OpenAPI document (schemathesis): none gets a 5xx.

The schemathesis command sends examples, boundary values (say a ``top_p`` just above 0, or an
empty tensor), random valid and invalid bodies, wrong methods and request sequences to every
route the document lists. ``schemathesis_hooks.py`` points most of them at the served models.
The admin routes are left out: they unload the session server's models, which other tests share.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers.server import ServerProcess

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]


def test_no_generated_request_gets_a_server_error(tiny_server: ServerProcess, tmp_path: Path) -> None:
    command = [
        str(Path(sys.executable).with_name("st")), "run", f"{tiny_server.http_url}/openapi.json",
        "--exclude-path-regex", "^/admin", "--checks", "not_a_server_error",
        "--max-examples", "50", "--request-timeout", "60", "--no-color",
    ]
    environment = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.serving.schemathesis_hooks",
                   "PYTHONPATH": str(REPOSITORY_ROOT)}

    finished = subprocess.run(command, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=900)

    report = finished.stdout + finished.stderr
    assert finished.returncode == 0, report[-6000:]
    assert "generated" in report and "passed" in report, report[-3000:]
