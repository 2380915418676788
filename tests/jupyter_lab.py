"""Start a JupyterLab server for a test and stop it (with its kernels) afterwards."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator, Sequence


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(arguments: Sequence[str], cwd: Path, env: dict[str, str], log: Path) -> Iterator[str]:
    """``python -m jupyterlab *arguments`` on a free port of 127.0.0.1 without a token; yields its URL.

    Waits up to 120 s for ``/api`` to answer (the server's log is in the error if it does not),
    and stops the server with SIGTERM (which shuts its kernels down), then SIGKILL after 20 s.
    """
    port = free_port()
    argv = [sys.executable, "-m", "jupyterlab", *arguments, "--no-browser", f"--port={port}",
            "--ServerApp.port_retries=0", "--IdentityProvider.token=", "--ServerApp.password="]
    with log.open("w") as out:
        server = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    urllib.request.urlopen(f"{url}/api", timeout=2)
                    break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"JupyterLab did not start:\n{log.read_text()[-3000:]}") from None
                    time.sleep(0.5)
            yield url
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
