#!/usr/bin/env python3
"""Start-up time, idle memory and binary size of the Firefly release binary.

Each run starts `firefly serve` in a new, empty temporary directory (used as the working
directory, so the embedded SQLite default creates ./data/firefly.db and
./data/secrets.toml from nothing), on 127.0.0.1 and a free port, and measures:

  * start-up: time from spawning the process to the first HTTP 200 from GET /readyz,
    polled every 2 ms over a raw socket;
  * idle RSS: VmRSS from /proc/<pid>/status, 2 s after ready with no traffic;
  * RSS after traffic: VmRSS again after 200 sequential GET /healthz and 20 account
    requests (10 registrations + 10 logins), sampled after another 2 s of quiet;

then stops the server with SIGTERM and requires exit code 0. The size of the binary is
read with os.stat. Python 3.11 standard library only; Linux only (/proc).

    cargo build --release -p firefly && python3 bench/startup.py [--runs N] [--bin PATH]

MB here is 2**20 bytes. The targets (start < 1 s, idle RSS < 30 MB, binary < 40 MB) are
reported, not asserted.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_BIN = REPO / "target" / "release" / "firefly"
HOST = "127.0.0.1"
MIB = 1024 * 1024

READY_TIMEOUT_S = 30.0
POLL_INTERVAL_S = 0.002
SETTLE_S = 2.0
HEALTHZ_REQUESTS = 200
ACCOUNT_USERS = 10  # one registration and one login each: 20 requests
STOP_TIMEOUT_S = 40.0  # longer than the default 30 s shutdown grace
REQUEST_TIMEOUT_S = 30.0


class BenchError(Exception):
    pass


def check_binary(path: Path) -> Path:
    if not path.is_file():
        sys.exit(
            f"error: the Firefly binary {path} does not exist.\n"
            f"Build it first:  cargo build --release -p firefly   (in {REPO})\n"
            f"or point --bin at an existing binary."
        )
    if not os.access(path, os.X_OK):
        sys.exit(f"error: {path} is not executable.")
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def server_env(extra: dict[str, str]) -> dict[str, str]:
    """The current environment without any FIREFLY_* variable, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIREFLY_")}
    env.update(extra)
    return env


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])  # "VmRSS:   12345 kB"
    raise BenchError(f"{field} not found in /proc/{pid}/status")


def readyz_status(port: int) -> int | None:
    """Status code of GET /readyz, or None while the port does not accept connections."""
    try:
        with socket.create_connection((HOST, port), timeout=1.0) as s:
            s.sendall(f"GET /readyz HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n\r\n".encode())
            buf = b""
            while b"\r\n" not in buf:
                chunk = s.recv(4096)
                if not chunk:
                    break
                buf += chunk
    except OSError:
        return None
    parts = buf.split(b"\r\n", 1)[0].split()
    if len(parts) >= 2 and parts[1].isdigit():
        return int(parts[1])
    return None


def log_tail(log_path: Path, lines: int = 20) -> str:
    try:
        text = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no server log)"
    return "\n".join(text[-lines:]) or "(server log is empty)"


def request(conn: http.client.HTTPConnection, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
    headers = {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["content-type"] = "application/json"
    conn.request(method, path, body=data, headers=headers)
    resp = conn.getresponse()
    return resp.status, resp.read()


def traffic(port: int) -> None:
    """200 sequential GET /healthz, then 10 registrations and 10 logins, one connection."""
    conn = http.client.HTTPConnection(HOST, port, timeout=REQUEST_TIMEOUT_S)
    try:
        for _ in range(HEALTHZ_REQUESTS):
            status, body = request(conn, "GET", "/healthz")
            if status != 200:
                raise BenchError(f"GET /healthz answered {status}: {body[:200]!r}")
        for i in range(ACCOUNT_USERS):
            cred = {"email": f"startup-{i}@example.com", "password": secrets.token_urlsafe(18)}
            status, body = request(conn, "POST", "/api/auth/register", cred)
            if status != 201:
                raise BenchError(f"POST /api/auth/register answered {status}: {body[:200]!r}")
            status, body = request(conn, "POST", "/api/auth/login", cred)
            if status != 200:
                raise BenchError(f"POST /api/auth/login answered {status}: {body[:200]!r}")
    finally:
        conn.close()


def one_run(binary: Path, run: int) -> dict[str, float]:
    workdir = Path(tempfile.mkdtemp(prefix="firefly-startup-"))
    log_path = workdir / "server.log"  # outside ./data, which the server creates
    port = free_port()
    env = server_env(
        {
            # Only the 10 logins of the traffic phase need this: the default limiter
            # (1/s, burst 5 per address) would answer 429 to the sixth. It changes no
            # start-up work.
            "FIREFLY_AUTH__LOGIN_RATE_PER_SEC": "1000000",
            "FIREFLY_AUTH__LOGIN_BURST": "1000000",
        }
    )
    proc = None
    try:
        with open(log_path, "wb") as log:
            t0 = time.perf_counter()
            proc = subprocess.Popen(
                [str(binary), "serve", "--listen", f"{HOST}:{port}"],
                cwd=workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        deadline = t0 + READY_TIMEOUT_S
        while True:
            status = readyz_status(port)
            if status == 200:
                startup_ms = (time.perf_counter() - t0) * 1000
                break
            if proc.poll() is not None:
                raise BenchError(f"the server exited with code {proc.returncode} before /readyz answered 200:\n{log_tail(log_path)}")
            if time.perf_counter() > deadline:
                raise BenchError(f"/readyz did not answer 200 within {READY_TIMEOUT_S:.0f} s (last status {status}):\n{log_tail(log_path)}")
            time.sleep(POLL_INTERVAL_S)

        time.sleep(SETTLE_S)
        rss_idle = rss_kib(proc.pid) / 1024
        traffic(port)
        time.sleep(SETTLE_S)
        rss_after = rss_kib(proc.pid) / 1024
        rss_hwm = rss_kib(proc.pid, "VmHWM") / 1024

        t_stop = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise BenchError(f"the server did not exit within {STOP_TIMEOUT_S:.0f} s of SIGTERM:\n{log_tail(log_path)}")
        stop_ms = (time.perf_counter() - t_stop) * 1000
        if code != 0:
            raise BenchError(f"the server exited with code {code} after SIGTERM (expected 0):\n{log_tail(log_path)}")
        print(
            f"run {run:>2}: ready in {startup_ms:7.1f} ms   RSS idle {rss_idle:6.1f} MB   "
            f"after traffic {rss_after:6.1f} MB (peak {rss_hwm:6.1f} MB)   SIGTERM -> exit 0 in {stop_ms:6.1f} ms",
            flush=True,
        )
        return {"startup_ms": startup_ms, "rss_idle": rss_idle, "rss_after": rss_after, "rss_hwm": rss_hwm, "stop_ms": stop_ms}
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", type=Path, default=DEFAULT_BIN, help=f"firefly binary (default {DEFAULT_BIN})")
    parser.add_argument("--runs", "-n", type=int, default=10, help="number of fresh starts (default 10)")
    args = parser.parse_args()
    if not 1 <= args.runs <= 1000:
        parser.error("--runs must be between 1 and 1000")
    binary = check_binary(args.bin.resolve())
    binary_mb = os.stat(binary).st_size / MIB

    print(f"binary: {binary} ({binary_mb:.1f} MB)")
    print(f"{args.runs} runs, each on a fresh temporary data directory, {HOST} only\n", flush=True)
    results = []
    try:
        for run in range(1, args.runs + 1):
            results.append(one_run(binary, run))
    except BenchError as e:
        print(f"\nerror in run {len(results) + 1}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130

    def row(label: str, values: list[float], fmt: str) -> str:
        cells = [format(min(values), fmt), format(statistics.median(values), fmt), format(max(values), fmt)]
        return f"{label:<34}{cells[0]:>10}{cells[1]:>10}{cells[2]:>10}"

    def col(key: str) -> list[float]:
        return [r[key] for r in results]

    print()
    print(f"{'':<34}{'min':>10}{'median':>10}{'max':>10}")
    print(row("start to /readyz 200 (ms)", col("startup_ms"), ".1f"))
    print(row("RSS idle, 2 s after ready (MB)", col("rss_idle"), ".1f"))
    print(row("RSS after 220 requests (MB)", col("rss_after"), ".1f"))
    print(row("peak RSS, VmHWM (MB)", col("rss_hwm"), ".1f"))
    print(row("SIGTERM to exit 0 (ms)", col("stop_ms"), ".1f"))
    print(f"{'binary size (MB)':<34}{binary_mb:>30.1f}")
    print()
    startup = statistics.median(col("startup_ms"))
    idle = statistics.median(col("rss_idle"))
    after = statistics.median(col("rss_after"))

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    print("targets (reported, not asserted):")
    print(f"  start to /readyz < 1 s : median {startup:.1f} ms  -> {verdict(startup < 1000)}")
    print(f"  idle RSS < 30 MB       : median {idle:.1f} MB   -> {verdict(idle < 30)}")
    print(f"  binary < 40 MB         : {binary_mb:.1f} MB        -> {verdict(binary_mb < 40)}")
    print()
    print(f"startup_ms_median={startup:.1f} rss_idle_mb={idle:.1f} rss_after_mb={after:.1f} binary_mb={binary_mb:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
