"""A real `callboard serve` process and the real console script, for end-to-end tests.

    with CallboardProcess(tmp_path, providers={"generic": fake}) as cb:
        httpx.post(f"{cb.url}/v1/jobs", json=...)
        cb.cli("jobs", "list", "--json")

The process gets its own SQLite file (or PostgreSQL URL), port, secret key and a short retry
schedule; provider base URLs point at fake providers. `kill()` sends SIGKILL, `start()` restarts
on the same database and port.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from tests.servers import free_port

BIN = Path(sys.executable).parent
CALLBOARD = str(BIN / "callboard")
START_TIMEOUT = 30.0


def base_env(tmp: Path, *, database_url: str | None = None, port: int | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLBOARD_")}
    port = port or free_port()
    env.update(
        {
            "CALLBOARD_DATABASE_URL": database_url or f"sqlite:///{tmp / 'callboard.db'}",
            "CALLBOARD_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "CALLBOARD_SECRET_KEY": "test-secret-key-" + tmp.name,
            "CALLBOARD_ALLOW_PRIVATE_TARGETS": "true",
            "CALLBOARD_RETRY_SCHEDULE": "0,0.2,0.4",
            "CALLBOARD_FETCH_RETRY_BASE": "0.1",
            "CALLBOARD_RECONCILE_AFTER": "600",
            "CALLBOARD_LOG_FORMAT": "json",
            "CALLBOARD_MAX_BODY_BYTES": "1000000",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def wait_until(predicate: Any, *, timeout: float = 20.0, interval: float = 0.05, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class CallboardProcess:
    def __init__(
        self,
        tmp: Path,
        *,
        fakes: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        database_url: str | None = None,
        args: tuple[str, ...] = (),
        command: str = "serve",
        port: int | None = None,
    ) -> None:
        self.tmp = tmp
        self.command = command
        self.port = port or free_port()
        self.env = base_env(tmp, database_url=database_url, port=self.port)
        for name, fake in (fakes or {}).items():
            self.env[f"CALLBOARD_{name.upper()}_BASE_URL"] = fake.base_url
            self.env[f"CALLBOARD_{name.upper()}_API_KEY"] = fake.api_key
            if getattr(fake, "webhook_secret", None):
                self.env[f"CALLBOARD_{name.upper()}_WEBHOOK_SECRET"] = fake.webhook_secret
        self.env.update(env or {})
        self.args = args
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = tmp / f"serve-{self.port}.log"
        self.http = httpx.Client(base_url=self.url, timeout=10.0)

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> CallboardProcess:
        log = open(self.log_path, "ab")
        argv = [CALLBOARD, "serve", "--port", str(self.port)] if self.command == "serve" else [CALLBOARD, self.command]
        self.proc = subprocess.Popen(
            [*argv, *self.args],
            env=self.env,
            cwd=self.tmp,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"callboard serve exited with {self.proc.returncode}:\n{self.logs()}")
            if self.command != "serve":
                if "callboard.started" in self.logs():
                    return self
                time.sleep(0.05)
                continue
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"callboard serve did not start:\n{self.logs()}")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def terminate(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_lines(self) -> list[dict[str, Any]]:
        lines = []
        for line in self.logs().splitlines():
            try:
                lines.append(json.loads(line))
            except ValueError:
                continue
        return lines

    def __enter__(self) -> CallboardProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.http.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    # -- the real console script ----------------------------------------------------------------

    def cli(self, *args: str, check: bool = False, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, env=self.env, cwd=self.tmp, check=check, timeout=timeout)

    def cli_json(self, *args: str) -> Any:
        result = self.cli(*args, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    # -- reading state through the admin API ---------------------------------------------------

    def job(self, job_id: str) -> dict[str, Any]:
        response = self.http.get(f"/v1/jobs/{job_id}")
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        return data

    def wait_job(self, job_id: str, status: str, timeout: float = 20.0) -> dict[str, Any]:
        result: dict[str, Any] = wait_until(
            lambda: (j := self.job(job_id))["status"] == status and j,
            timeout=timeout,
            what=f"job {job_id} to be {status}",
        )
        return result

    def events(self, **params: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            q = {**params, "limit": "500", **({"cursor": cursor} if cursor else {})}
            page = self.http.get("/v1/events", params=q).json()
            items += page["data"]
            cursor = page["next_cursor"]
            if not cursor:
                return items


def run_cli(
    *args: str, env: Mapping[str, str], cwd: Path, check: bool = False, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [CALLBOARD, *args], env=dict(env), cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"callboard {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
    return result
