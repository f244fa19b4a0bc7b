#!/usr/bin/env python3
"""Login throughput and latency of the Firefly release binary under concurrent load.

Starts a fresh `firefly serve` (new temporary directory as working directory, embedded
SQLite default, 127.0.0.1 and a free port) with the default argon2id cost (m=19456 KiB,
t=2, p=1, or the cost given with --argon2-*) and with the login rate limiter opened up,
registers C users, then runs C threads that each log in as their own user in a loop on a
persistent keep-alive connection, for D seconds or until --max-logins, whichever comes
first. Meanwhile one more thread probes GET /healthz every 20 ms on its own connection
(how responsive the server stays while every core hashes passwords), and the server's
VmRSS is sampled every 200 ms. The server is stopped with SIGTERM at the end, also on
error. Python 3.11 standard library only; Linux only (/proc).

    cargo build --release -p firefly && python3 bench/login_load.py [-c 16] [-d 20]

The client runs on the same machine as the server and shares its cores.
MB here is 2**20 bytes.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_BIN = REPO / "target" / "release" / "firefly"
HOST = "127.0.0.1"
MIB = 1024 * 1024

DEFAULT_ARGON2_MEMORY_KIB = 19456
DEFAULT_ARGON2_ITERATIONS = 2
ARGON2_PARALLELISM = 1
OPEN_LIMITER = "1000000"

READY_TIMEOUT_S = 30.0
REQUEST_TIMEOUT_S = 30.0
HEALTHZ_INTERVAL_S = 0.020
RSS_INTERVAL_S = 0.200
STOP_TIMEOUT_S = 40.0  # longer than the default 30 s shutdown grace


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


def rss_kib(pid: int, field: str = "VmRSS") -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def log_tail(log_path: Path, lines: int = 20) -> str:
    try:
        text = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no server log)"
    return "\n".join(text[-lines:]) or "(server log is empty)"


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted list (p in 0..100)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def post_json(conn: http.client.HTTPConnection, path: str, body: dict) -> tuple[int, bytes]:
    conn.request("POST", path, body=json.dumps(body).encode(), headers={"content-type": "application/json"})
    resp = conn.getresponse()
    return resp.status, resp.read()


class Server:
    """A firefly process in its own temporary directory; `stop` is idempotent."""

    def __init__(self, binary: Path, env_extra: dict[str, str]):
        self.workdir = Path(tempfile.mkdtemp(prefix="firefly-login-"))
        self.log_path = self.workdir / "server.log"
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("FIREFLY_")}
        env.update(env_extra)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [str(binary), "serve", "--listen", f"{HOST}:{self.port}"],
                cwd=self.workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        self.exit_code: int | None = None

    def wait_ready(self) -> float:
        t0 = time.perf_counter()
        while True:
            try:
                conn = http.client.HTTPConnection(HOST, self.port, timeout=2)
                conn.request("GET", "/readyz")
                status = conn.getresponse().status
                conn.close()
                if status == 200:
                    return time.perf_counter() - t0
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise BenchError(f"the server exited with code {self.proc.returncode} before it was ready")
            if time.perf_counter() - t0 > READY_TIMEOUT_S:
                raise BenchError(f"/readyz did not answer 200 within {READY_TIMEOUT_S:.0f} s")
            time.sleep(0.01)

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                print(f"warning: the server ignored SIGTERM for {STOP_TIMEOUT_S:.0f} s; killing it", file=sys.stderr)
                self.proc.kill()
                self.proc.wait()
        self.exit_code = self.proc.returncode
        return self.exit_code

    def cleanup(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


class RssSampler(threading.Thread):
    def __init__(self, pid: int, stop: threading.Event):
        super().__init__(daemon=True)
        self.pid, self.stop_event = pid, stop
        self.peak_kib = 0
        self.samples = 0

    def run(self) -> None:
        while not self.stop_event.is_set():
            kib = rss_kib(self.pid)
            if kib is not None:
                self.peak_kib = max(self.peak_kib, kib)
                self.samples += 1
            self.stop_event.wait(RSS_INTERVAL_S)


class HealthProbe(threading.Thread):
    """GET /healthz every 20 ms (on a fixed schedule) on one keep-alive connection."""

    def __init__(self, port: int, stop: threading.Event):
        super().__init__(daemon=True)
        self.port, self.stop_event = port, stop
        self.latencies_ms: list[float] = []
        self.errors: Counter[str] = Counter()

    def run(self) -> None:
        conn = http.client.HTTPConnection(HOST, self.port, timeout=REQUEST_TIMEOUT_S)
        next_at = time.perf_counter()
        while not self.stop_event.is_set():
            t0 = time.perf_counter()
            try:
                conn.request("GET", "/healthz")
                resp = conn.getresponse()
                resp.read()
                if resp.status == 200:
                    self.latencies_ms.append((time.perf_counter() - t0) * 1000)
                else:
                    self.errors[f"HTTP {resp.status}"] += 1
            except (OSError, http.client.HTTPException) as e:
                self.errors[type(e).__name__] += 1
                conn.close()
                conn = http.client.HTTPConnection(HOST, self.port, timeout=REQUEST_TIMEOUT_S)
            next_at += HEALTHZ_INTERVAL_S
            now = time.perf_counter()
            if next_at < now:  # a probe overran the interval: do not burst to catch up
                next_at = now
            self.stop_event.wait(next_at - now)
        conn.close()


class LoadState:
    """Shared between the login workers: the budget of logins, deadline and results."""

    def __init__(self, max_logins: int, deadline: float):
        self.lock = threading.Lock()
        self.remaining = max_logins
        self.deadline = deadline
        self.latencies_ms: list[float] = []
        self.errors: Counter[str] = Counter()
        self.error_samples: list[str] = []

    def take_ticket(self) -> bool:
        if time.perf_counter() >= self.deadline:
            return False
        with self.lock:
            if self.remaining <= 0:
                return False
            self.remaining -= 1
            return True

    def record(self, latency_ms: float | None, error: str | None = None, sample: str | None = None) -> None:
        with self.lock:
            if error is None:
                self.latencies_ms.append(latency_ms)
            else:
                self.errors[error] += 1
                if sample and len(self.error_samples) < 5:
                    self.error_samples.append(sample)


def login_worker(port: int, cred: dict, state: LoadState, start: threading.Barrier) -> None:
    conn = http.client.HTTPConnection(HOST, port, timeout=REQUEST_TIMEOUT_S)
    body = json.dumps(cred).encode()
    headers = {"content-type": "application/json"}
    start.wait()
    try:
        while state.take_ticket():
            t0 = time.perf_counter()
            try:
                conn.request("POST", "/api/auth/login", body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                latency = (time.perf_counter() - t0) * 1000
                if resp.status == 200 and b'"access_token"' in data:
                    state.record(latency)
                else:
                    state.record(None, f"HTTP {resp.status}", data[:200].decode(errors="replace"))
            except (OSError, http.client.HTTPException) as e:
                state.record(None, type(e).__name__, repr(e))
                conn.close()
                conn = http.client.HTTPConnection(HOST, port, timeout=REQUEST_TIMEOUT_S)
    finally:
        conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", type=Path, default=DEFAULT_BIN, help=f"firefly binary (default {DEFAULT_BIN})")
    parser.add_argument("--concurrency", "-c", type=int, default=16, help="concurrent login workers, one user each (default 16)")
    parser.add_argument("--duration", "-d", type=float, default=20.0, help="seconds of load (default 20)")
    parser.add_argument("--max-logins", type=int, default=100_000, help="stop after this many logins in total (default 100000)")
    parser.add_argument("--argon2-memory-kib", type=int, default=DEFAULT_ARGON2_MEMORY_KIB,
                        help=f"argon2id memory cost in KiB (default {DEFAULT_ARGON2_MEMORY_KIB}, the server default)")
    parser.add_argument("--argon2-iterations", type=int, default=DEFAULT_ARGON2_ITERATIONS,
                        help=f"argon2id time cost (default {DEFAULT_ARGON2_ITERATIONS}, the server default)")
    args = parser.parse_args()
    if not 1 <= args.concurrency <= 256:
        parser.error("--concurrency must be between 1 and 256")
    if not 0 < args.duration <= 600:
        parser.error("--duration must be more than 0 and at most 600 seconds")
    if not 1 <= args.max_logins <= 10_000_000:
        parser.error("--max-logins must be between 1 and 10000000")
    if args.argon2_memory_kib < 8 or args.argon2_iterations < 1:
        parser.error("--argon2-memory-kib must be at least 8 and --argon2-iterations at least 1")
    binary = check_binary(args.bin.resolve())
    c = args.concurrency

    default_cost = (args.argon2_memory_kib, args.argon2_iterations) == (DEFAULT_ARGON2_MEMORY_KIB, DEFAULT_ARGON2_ITERATIONS)
    print(f"binary: {binary}")
    print(
        f"argon2id: m={args.argon2_memory_kib} KiB t={args.argon2_iterations} p={ARGON2_PARALLELISM}"
        f" ({'the server default' if default_cost else 'NOT the server default: m=19456 KiB t=2 p=1'})"
    )
    print(
        f"login rate limiter: disabled for the benchmark (FIREFLY_AUTH__LOGIN_RATE_PER_SEC={OPEN_LIMITER},"
        f" FIREFLY_AUTH__LOGIN_BURST={OPEN_LIMITER});\n"
        "  by default it allows 1 login/s (burst 5) per client address and per account, and every\n"
        "  request here comes from 127.0.0.1, so with it on we would measure 429s, not the argon2 cost."
    )
    print(f"load: {c} workers x own user x keep-alive connection, {args.duration:g} s or {args.max_logins} logins;"
          f" /healthz probe every {HEALTHZ_INTERVAL_S * 1000:.0f} ms; RSS every {RSS_INTERVAL_S * 1000:.0f} ms;"
          f" {os.cpu_count()} CPUs shared by client and server", flush=True)

    server = Server(
        binary,
        {
            "FIREFLY_AUTH__ARGON2_MEMORY_KIB": str(args.argon2_memory_kib),
            "FIREFLY_AUTH__ARGON2_ITERATIONS": str(args.argon2_iterations),
            "FIREFLY_AUTH__ARGON2_PARALLELISM": str(ARGON2_PARALLELISM),
            "FIREFLY_AUTH__LOGIN_RATE_PER_SEC": OPEN_LIMITER,
            "FIREFLY_AUTH__LOGIN_BURST": OPEN_LIMITER,
        },
    )
    stop_probes = threading.Event()
    sampler = probe = None
    failed = False
    try:
        ready_s = server.wait_ready()
        print(f"server pid {server.proc.pid} on {HOST}:{server.port}, ready in {ready_s * 1000:.0f} ms", flush=True)
        sampler = RssSampler(server.proc.pid, stop_probes)
        sampler.start()

        creds = [{"email": f"bench-{i}@example.com", "password": secrets.token_urlsafe(18)} for i in range(c)]
        t_reg = time.perf_counter()
        conn = http.client.HTTPConnection(HOST, server.port, timeout=REQUEST_TIMEOUT_S)
        try:
            for cred in creds:
                status, body = post_json(conn, "/api/auth/register", cred)
                if status != 201:
                    raise BenchError(f"POST /api/auth/register answered {status}: {body[:300]!r}")
        finally:
            conn.close()
        print(f"registered {c} users in {(time.perf_counter() - t_reg) * 1000:.0f} ms (sequential)", flush=True)

        probe = HealthProbe(server.port, stop_probes)
        start = threading.Barrier(c + 1)
        state = LoadState(args.max_logins, deadline=math.inf)
        workers = [threading.Thread(target=login_worker, args=(server.port, cred, state, start), daemon=True) for cred in creds]
        for w in workers:
            w.start()
        probe.start()
        t0 = time.perf_counter()
        state.deadline = t0 + args.duration
        start.wait()
        for w in workers:
            w.join(timeout=args.duration + 2 * REQUEST_TIMEOUT_S)
        elapsed = time.perf_counter() - t0
        stop_probes.set()
        probe.join(timeout=REQUEST_TIMEOUT_S + 1)
        sampler.join(timeout=2)
        if any(w.is_alive() for w in workers):
            raise BenchError("login workers did not finish in time")
        hwm_kib = rss_kib(server.proc.pid, "VmHWM") or 0
    except (BenchError, OSError, http.client.HTTPException) as e:
        failed = True
        print(f"\nerror: {e}", file=sys.stderr)
    except KeyboardInterrupt:
        failed = True
        print("\ninterrupted", file=sys.stderr)
    finally:
        stop_probes.set()
        code = server.stop()
        if failed:
            print(f"server log tail:\n{log_tail(server.log_path)}", file=sys.stderr)
        server.cleanup()
    if failed:
        return 1

    lat = sorted(state.latencies_ms)
    ok = len(lat)
    errors = sum(state.errors.values())
    rps = ok / elapsed if elapsed > 0 else 0.0
    hz = sorted(probe.latencies_ms)
    hz_errors = sum(probe.errors.values())
    peak_mb = sampler.peak_kib / 1024

    print()
    print(f"logins               {ok} ok in {elapsed:.2f} s")
    print(f"errors               {errors}" + (f"  {dict(state.errors)}" if errors else ""))
    for s in state.error_samples:
        print(f"  e.g. {s}")
    print(f"logins/s             {rps:.1f}")
    print(f"login latency ms     p50 {percentile(lat, 50):.1f}  p90 {percentile(lat, 90):.1f}"
          f"  p99 {percentile(lat, 99):.1f}  max {(lat[-1] if lat else float('nan')):.1f}")
    print(f"healthz latency ms   p50 {percentile(hz, 50):.2f}  p99 {percentile(hz, 99):.2f}"
          f"  max {(hz[-1] if hz else float('nan')):.2f}  ({len(hz)} probes"
          + (f", {hz_errors} failed: {dict(probe.errors)})" if hz_errors else ")"))
    print(f"server RSS           peak {peak_mb:.1f} MB sampled every {RSS_INTERVAL_S * 1000:.0f} ms"
          f" ({sampler.samples} samples); VmHWM {hwm_kib / 1024:.1f} MB")
    print(f"server exit          {code} after SIGTERM" + ("" if code == 0 else "  (expected 0)"))
    print()
    print(
        f"login_c{c}_rps={rps:.1f} login_p50_ms={percentile(lat, 50):.1f} login_p99_ms={percentile(lat, 99):.1f}"
        f" errors={errors} healthz_p99_ms={percentile(hz, 99):.2f} healthz_max_ms={(hz[-1] if hz else float('nan')):.2f}"
        f" rss_peak_mb={peak_mb:.1f}"
    )
    return 0 if errors == 0 and hz_errors == 0 and code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
