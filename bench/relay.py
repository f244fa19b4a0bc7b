#!/usr/bin/env python3
"""Relay overhead: what Firefly adds to an OpenAI-compatible chat completion.

Starts the mock upstream (`firefly-mock`, no delay), a plain pass-through proxy in front of
it (`passthrough`, a few dozen lines of hyper: the floor of one extra loopback hop) and
Firefly (`firefly serve`, fresh temporary data directory, embedded SQLite), sets Firefly up
through its HTTP API (admin login, a channel to the mock, a price for the model, credits,
an API key), then loads three targets with the same request from `loadgen`:

    A  the mock directly           http://127.0.0.1:MOCK/v1/chat/completions
    B  the pass-through proxy      http://127.0.0.1:PROXY/v1/chat/completions
    C  Firefly                     http://127.0.0.1:FIREFLY/v1/chat/completions

for each scenario {non-stream, stream} x {concurrency 1, 64}, interleaved A B C A B C ...
for R rounds, and reports per target the median over rounds. It also samples Firefly's
VmRSS (idle, peak under load, 5 s after), and checks that no request was lost: the mock's
own request counter must grow by exactly the number of 2xx answers Firefly gave.

    python3 bench/relay.py [--rounds 3] [--duration 5] [--warmup 1] [--targets A,B,C]

Everything listens on 127.0.0.1 only; every child is stopped on exit, also on error or
Ctrl-C. Python 3.11 standard library; Linux (/proc). MB is 2**20 bytes.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RELEASE = REPO / "target" / "release"
RESULTS = REPO / "bench" / "results"
HOST = "127.0.0.1"
MIB = 1024 * 1024

MODEL = "gpt-4o-mini"
REQUEST = {"model": MODEL, "messages": [{"role": "user", "content": "Say hello in a short sentence."}], "max_tokens": 32}
UPSTREAM_KEY = "sk-bench-upstream-0123456789abcdef"
ADMIN_EMAIL = "bench-admin@example.com"
ADMIN_PASSWORD = "bench-admin-password-0123"
TARGET_NAMES = {"A": "mock direct", "B": "pass-through proxy", "C": "Firefly"}

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 40.0  # longer than Firefly's default 30 s shutdown grace
REQUEST_TIMEOUT_S = 10.0
RSS_INTERVAL_S = 0.100
RSS_AFTER_S = 5.0
# The setup's one login leaves argon2's pooled 19 MiB buffer, freed after 10 s idle;
# waiting it out keeps it out of the relay's idle and peak RSS.
ARGON2_POOL_IDLE_S = 11.0


class BenchError(Exception):
    pass


# ---------------------------------------------------------------- processes


class Child:
    """A child process logging to files in `workdir`; `stop` is idempotent."""

    def __init__(self, name: str, argv: list[str], workdir: Path, env: dict[str, str] | None = None):
        self.name = name
        self.stdout_path = workdir / f"{name}.out"
        self.stderr_path = workdir / f"{name}.err"
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(argv, cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def first_line(self) -> str:
        """Waits for the first line the process prints on stdout."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            text = self.stdout_path.read_text(errors="replace")
            if "\n" in text:
                return text.split("\n", 1)[0].strip()
            if self.proc.poll() is not None:
                raise BenchError(f"{self.name} exited with code {self.proc.returncode}: {self.log_tail()}")
            time.sleep(0.01)
        raise BenchError(f"{self.name} printed nothing within {START_TIMEOUT_S:.0f} s")

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.stderr_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(text[-lines:]) or "(empty log)"

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                print(f"warning: {self.name} ignored SIGTERM for {STOP_TIMEOUT_S:.0f} s; killing it", file=sys.stderr)
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def port_of(addr: str) -> int:
    """`http://127.0.0.1:PORT/v1` or `listening on 127.0.0.1:PORT` -> PORT."""
    return int(addr.rsplit(":", 1)[1].split("/", 1)[0])


def rss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class RssSampler(threading.Thread):
    """VmRSS every 100 ms; `take_peak` returns the peak since the last call."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid = pid
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.window_peak = 0
        self.peak = 0

    def run(self) -> None:
        while not self.stop_event.is_set():
            kib = rss_kib(self.pid)
            if kib is not None:
                with self.lock:
                    self.window_peak = max(self.window_peak, kib)
                    self.peak = max(self.peak, kib)
            self.stop_event.wait(RSS_INTERVAL_S)

    def take_peak(self) -> int:
        with self.lock:
            peak, self.window_peak = self.window_peak, 0
        return peak


# ---------------------------------------------------------------- HTTP helpers


def call(port: int, method: str, path: str, body: dict | None = None, token: str | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=REQUEST_TIMEOUT_S)
    try:
        headers = {"content-type": "application/json"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        conn.request(method, path, body=None if body is None else json.dumps(body).encode(), headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def expect(port: int, method: str, path: str, status: int, body: dict | None = None, token: str | None = None) -> dict:
    got, data = call(port, method, path, body, token)
    if got != status:
        raise BenchError(f"{method} {path} answered {got}, expected {status}: {data[:500].decode(errors='replace')}")
    return json.loads(data) if data else {}


def wait_ready(child: Child, port: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            if call(port, "GET", "/readyz")[0] == 200:
                return
        except OSError:
            pass
        if child.proc.poll() is not None:
            raise BenchError(f"firefly exited with code {child.proc.returncode}: {child.log_tail()}")
        time.sleep(0.02)
    raise BenchError(f"firefly's /readyz did not answer 200 within {START_TIMEOUT_S:.0f} s")


def mock_chat_count(port: int) -> int:
    return expect(port, "GET", "/_mock/stats", 200)["chat_completions"]


def create_api_key(port: int, mock_base: str) -> str:
    """Admin login, a channel to the mock, a price, credits, an API key; returns the key."""
    login = expect(port, "POST", "/api/auth/login", 200, {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    token, admin_id = login["access_token"], login["user"]["id"]
    channel = {"name": "bench-mock", "provider": "openai", "base_url": mock_base, "keys": [UPSTREAM_KEY], "models": [MODEL]}
    expect(port, "POST", "/api/admin/channels", 201, channel, token)
    price = {"input_per_mtok": 150_000, "output_per_mtok": 600_000}
    expect(port, "PUT", f"/api/admin/models/{MODEL}", 200, price, token)
    grant = {"kind": "grant", "amount": 1_000_000_000_000, "note": "relay benchmark"}
    expect(port, "POST", f"/api/admin/users/{admin_id}/credits", 201, grant, token)
    return expect(port, "POST", "/api/keys", 201, {"name": "relay-bench"}, token)["key"]


# ---------------------------------------------------------------- building


# Each binary and the package that builds it.
PACKAGES = {"firefly-mock": "firefly-mock", "loadgen": "firefly-bench", "passthrough": "firefly-bench", "firefly": "firefly"}


def binaries(targets: list[str], firefly: Path | None, force: bool) -> dict[str, Path]:
    """The binaries these targets need, built with cargo when missing (or with --build);
    a Firefly binary given with --bin is used as it is."""
    names = ["firefly-mock", "loadgen"] + (["passthrough"] if "B" in targets else []) + (["firefly"] if "C" in targets else [])
    paths = {name: RELEASE / name for name in names}
    given = set()
    if "firefly" in paths and firefly is not None:
        if not firefly.is_file():
            raise BenchError(f"--bin {firefly}: no such file")
        paths["firefly"], given = firefly.resolve(), {"firefly"}
    missing = sorted({PACKAGES[n] for n, path in paths.items() if n not in given and (force or not path.is_file())})
    if missing:
        cmd = ["cargo", "build", "--release"] + [arg for p in missing for arg in ("-p", p)]
        print(f"building: {' '.join(cmd)}", flush=True)
        if subprocess.run(cmd, cwd=REPO).returncode != 0:
            raise BenchError(f"`{' '.join(cmd)}` failed (with Firefly's relay mid-edit, try --targets A,B)")
    return paths


# ---------------------------------------------------------------- load


def loadgen(binary: Path, url: str, key: str, stream: bool, concurrency: int, args: argparse.Namespace) -> dict:
    body = dict(REQUEST, stream=True) if stream else REQUEST
    argv = [
        str(binary), "--url", url, "--concurrency", str(concurrency),
        "--duration", str(args.duration), "--warmup", str(args.warmup),
        "--threads", str(args.loadgen_threads), "--timeout", str(args.request_timeout),
        "--header", f"authorization: Bearer {key}", "--body", json.dumps(body, separators=(",", ":")),
    ]
    if stream:
        argv.append("--stream")
    limit = args.warmup + args.duration + args.request_timeout + 30
    done = subprocess.run(argv, capture_output=True, text=True, timeout=limit)
    if done.returncode != 0 or not done.stdout.strip():
        raise BenchError(f"loadgen failed ({done.returncode}): {done.stderr.strip()}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def round_medians(rs: list[dict]) -> dict:
    """One target's loadgen results over its rounds: medians of the rates and latencies,
    sums of the counts."""
    return {
        "rounds": len(rs),
        "rps": median([r["rps"] for r in rs]),
        "p50_us": median([r["p50_us"] for r in rs]),
        "p90_us": median([r["p90_us"] for r in rs]),
        "p99_us": median([r["p99_us"] for r in rs]),
        "max_us": max((r["max_us"] for r in rs if r["max_us"] is not None), default=None),
        "ttfb_p50_us": median([r.get("ttfb_p50_us") for r in rs]),
        "ttfb_p99_us": median([r.get("ttfb_p99_us") for r in rs]),
        "requests": sum(r["requests"] for r in rs),
        "errors": sum(r["errors"] for r in rs),
        "first_error": next((r["first_error"] for r in rs if r["first_error"]), None),
        "loadgen_cpu_s": median([r["cpu_s"] for r in rs]),
    }


def summarize(runs: dict[str, list[dict]]) -> dict[str, dict]:
    """Median over rounds per target, and the differences to A and the ratio to B."""
    out: dict[str, dict] = {target: round_medians(rs) for target, rs in runs.items()}
    base, proxy = out.get("A"), out.get("B")
    for s in out.values():
        for q in ("p50_us", "p99_us", "ttfb_p50_us", "ttfb_p99_us"):
            have = base is not None and s[q] is not None and base[q] is not None
            s[f"added_{q}"] = s[q] - base[q] if have else None
        have = proxy is not None and proxy["rps"] and s["rps"] is not None
        s["rps_pct_of_proxy"] = 100.0 * s["rps"] / proxy["rps"] if have else None
    return out


def fmt(v: float | None, digits: int = 0, signed: bool = False) -> str:
    if v is None:
        return "—"
    return f"{v:+,.{digits}f}" if signed else f"{v:,.{digits}f}"


def markdown(results: list[dict]) -> str:
    lines = [
        "| scenario | target | rps | p50 µs | p99 µs | added p50 µs | added p99 µs | TTFB p50 µs | TTFB p99 µs"
        " | rps % of proxy | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for scenario in results:
        for target, s in scenario["summary"].items():
            lines.append(
                f"| {scenario['name']} | {target} {TARGET_NAMES[target]} | {fmt(s['rps'])} | {fmt(s['p50_us'])}"
                f" | {fmt(s['p99_us'])} | {fmt(s['added_p50_us'], signed=True)} | {fmt(s['added_p99_us'], signed=True)}"
                f" | {fmt(s['ttfb_p50_us'])} | {fmt(s['ttfb_p99_us'])} | {fmt(s['rps_pct_of_proxy'], 1)}"
                f" | {s['errors']} / {s['requests']} |"
            )
    return "\n".join(lines)


# ---------------------------------------------------------------- main


def machine() -> dict:
    model = ""
    try:
        model = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    return {"cpus": os.cpu_count(), "cpu_model": model, "kernel": platform.release(),
            "python": platform.python_version(), "commit": commit, "worktree_dirty": bool(dirty)}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin", type=Path, help="Firefly binary to use (default: target/release/firefly, built when missing)")
    p.add_argument("--targets", default="A,B,C", help="which of A (mock), B (proxy), C (Firefly); default A,B,C")
    p.add_argument("--modes", default="non-stream,stream", help="non-stream and/or stream (default both)")
    p.add_argument("--concurrency", default="1,64", help="comma-separated concurrency levels (default 1,64)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds per scenario (default 3)")
    p.add_argument("--duration", type=float, default=5.0, help="measured seconds per run (default 5)")
    p.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds before each run (default 1)")
    p.add_argument("--request-timeout", type=float, default=30.0, help="loadgen's per-request timeout (default 30)")
    p.add_argument("--loadgen-threads", type=int, default=1, help="loadgen runtime threads (default 1)")
    p.add_argument("--firefly-env", action="append", default=[], metavar="KEY=VALUE",
                   help="extra environment for Firefly, such as FIREFLY_LOG__LEVEL=warn or "
                        "TOKIO_WORKER_THREADS=3 (repeatable)")
    p.add_argument("--build", action="store_true", help="run cargo build --release even if the binaries exist")
    p.add_argument("--out", type=Path, help="results file (default bench/results/relay-<UTC time>.json)")
    args = p.parse_args()
    args.targets = [t.strip().upper() for t in args.targets.split(",") if t.strip()]
    if not args.targets or set(args.targets) - set(TARGET_NAMES):
        p.error("--targets takes a comma-separated subset of A,B,C")
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not args.modes or set(args.modes) - {"non-stream", "stream"}:
        p.error("--modes takes non-stream and/or stream")
    try:
        args.concurrency = [int(c) for c in args.concurrency.split(",")]
    except ValueError:
        p.error("--concurrency takes comma-separated integers")
    if not all(1 <= c <= 1024 for c in args.concurrency):
        p.error("--concurrency levels must be 1 to 1024")
    if not 1 <= args.rounds <= 50 or not 0 < args.duration <= 600 or not 0 <= args.warmup <= 60:
        p.error("--rounds 1..50, --duration 0..600 s, --warmup 0..60 s")
    for kv in args.firefly_env:
        if "=" not in kv or kv.startswith("="):
            p.error(f"--firefly-env {kv!r}: expected KEY=VALUE")
    return args


def on_sigterm(signum, _frame):
    raise SystemExit(128 + signum)


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, on_sigterm)
    targets = list(args.targets)
    try:
        paths = binaries(targets, args.bin, args.build)
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1

    workdir = Path(tempfile.mkdtemp(prefix="firefly-relay-"))
    children: list[Child] = []
    sampler: RssSampler | None = None
    report: dict = {"started_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                    "machine": machine(), "request": REQUEST, "scenarios": [], "notes": []}
    try:
        mock = Child("mock", [str(paths["firefly-mock"]), "--listen", f"{HOST}:0"], workdir)
        children.append(mock)
        mock_base = mock.first_line()
        mock_port = port_of(mock_base)
        urls = {"A": f"http://{HOST}:{mock_port}/v1/chat/completions"}
        keys = {"A": UPSTREAM_KEY, "B": UPSTREAM_KEY}
        print(f"A mock:    {mock_base} (pid {mock.pid})", flush=True)

        if "B" in targets:
            upstream = f"http://{HOST}:{mock_port}"
            proxy = Child("passthrough", [str(paths["passthrough"]), "--listen", f"{HOST}:0", "--upstream", upstream], workdir)
            children.append(proxy)
            proxy_port = port_of(proxy.first_line())
            urls["B"] = f"http://{HOST}:{proxy_port}/v1/chat/completions"
            print(f"B proxy:   {HOST}:{proxy_port} -> {upstream} (pid {proxy.pid})", flush=True)

        firefly = None
        if "C" in targets:
            firefly, port = start_firefly(paths["firefly"], workdir, args.firefly_env)
            children.append(firefly)
            wait_ready(firefly, port)
            key, report["firefly_rss"] = setup_firefly(firefly, port, mock_base, mock_port, report)
            if key is None:
                targets.remove("C")
            else:
                keys["C"] = key
                urls["C"] = f"http://{HOST}:{port}/v1/chat/completions"
                sampler = RssSampler(firefly.pid)
                sampler.start()

        runs_total = len(args.modes) * len(args.concurrency) * args.rounds * len(targets)
        eta = runs_total * (args.duration + args.warmup + 0.3)
        print(f"targets {','.join(targets)}; {runs_total} runs of {args.warmup:g}+{args.duration:g} s, about {eta / 60:.1f} min",
              flush=True)
        lost = {"mock_chat_requests": 0, "firefly_2xx": 0, "firefly_requests": 0}
        for mode in args.modes:
            stream = mode == "stream"
            for c in args.concurrency:
                name = f"{mode} c={c}"
                runs: dict[str, list[dict]] = {t: [] for t in targets}
                for rnd in range(args.rounds):
                    for t in targets:
                        before = mock_chat_count(mock_port) if t == "C" else 0
                        if t == "C" and sampler:
                            sampler.take_peak()
                        r = loadgen(paths["loadgen"], urls[t], keys[t], stream, c, args)
                        if t == "C":
                            r["mock_chat_delta"] = mock_chat_count(mock_port) - before
                            r["firefly_rss_peak_kib"] = sampler.take_peak() if sampler else None
                            lost["mock_chat_requests"] += r["mock_chat_delta"]
                            lost["firefly_2xx"] += r["ok"] + r["warmup_ok"]
                            lost["firefly_requests"] += r["requests"] + r["warmup_requests"]
                        r["round"] = rnd + 1
                        runs[t].append(r)
                        err = f" errors {r['errors']}: {r['first_error']}" if r["errors"] else ""
                        print(f"  {name:16} round {rnd + 1} {t}: {r['rps']:9.0f} rps  p50 {r['p50_us']} µs"
                              f"  p99 {r['p99_us']} µs{err}", flush=True)
                report["scenarios"].append({"name": name, "stream": stream, "concurrency": c,
                                            "summary": summarize(runs), "runs": runs})

        if sampler:
            sampler.take_peak()
            time.sleep(RSS_AFTER_S)
            report["firefly_rss"]["after_5s_kib"] = rss_kib(firefly.pid)
            report["firefly_rss"]["peak_kib"] = sampler.peak
        if "C" in targets:
            lost["lost"] = lost["firefly_2xx"] - lost["mock_chat_requests"]
            lost["ok"] = lost["lost"] == 0
            report["no_request_lost"] = lost

        print()
        print(markdown(report["scenarios"]))
        print_footer(report)
        out = args.out or RESULTS / f"relay-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nresults: {out}")
        return 0 if report.get("no_request_lost", {}).get("ok", True) else 1
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        if sampler:
            sampler.stop_event.set()
        for child in reversed(children):
            code = child.stop()
            if code not in (0, -signal.SIGTERM):
                print(f"note: {child.name} exited with {code}; log: {child.log_tail(5)}", file=sys.stderr)
        shutil.rmtree(workdir, ignore_errors=True)


def start_firefly(binary: Path, workdir: Path, extra_env: list[str]) -> tuple[Child, int]:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIREFLY_")}
    env |= {"FIREFLY_BOOTSTRAP__ADMIN_EMAIL": ADMIN_EMAIL, "FIREFLY_BOOTSTRAP__ADMIN_PASSWORD": ADMIN_PASSWORD}
    env |= dict(kv.split("=", 1) for kv in extra_env)
    argv = [str(binary), "serve", "--listen", f"{HOST}:{port}", "--data-dir", str(workdir / "firefly-data")]
    return Child("firefly", argv, workdir, env), port


def setup_firefly(child: Child, port: int, mock_base: str, mock_port: int, report: dict) -> tuple[str | None, dict]:
    """Sets Firefly up and tries one completion; returns (API key, or None when Firefly cannot
    relay yet, and the RSS samples so far)."""
    rss = {"ready_kib": rss_kib(child.pid)}
    key = create_api_key(port, mock_base)
    print(f"C firefly: {HOST}:{port} (pid {child.pid}), channel -> {mock_base}", flush=True)

    before = mock_chat_count(mock_port)
    status, body = call(port, "POST", "/v1/chat/completions", REQUEST, key)
    probe = {"status": status, "body": body[:300].decode(errors="replace"),
             "reached_mock": mock_chat_count(mock_port) - before}
    report["firefly_probe"] = probe
    if status != 200:
        why = "has no /v1/chat/completions yet" if status == 404 else "cannot relay"
        msg = f"Firefly {why} (POST /v1/chat/completions answered {status}: {probe['body'][:200]}); target C skipped"
        print(f"NOTE: {msg}", flush=True)
        report["notes"].append(msg)
        return None, rss
    print(f"waiting {ARGON2_POOL_IDLE_S:.0f} s for the login's argon2 buffer to be released, then idle RSS", flush=True)
    time.sleep(ARGON2_POOL_IDLE_S)
    rss["idle_kib"] = rss_kib(child.pid)
    return key, rss


def print_footer(report: dict) -> None:
    rss = report.get("firefly_rss")
    if rss:

        def mb(k: str) -> str:
            return f"{rss[k] / 1024:.1f} MB" if rss.get(k) else "—"

        print(f"\nFirefly VmRSS: ready {mb('ready_kib')}, idle {mb('idle_kib')}, peak under load {mb('peak_kib')},"
              f" 5 s after load {mb('after_5s_kib')}")
    lost = report.get("no_request_lost")
    if lost:
        verdict = "OK" if lost["ok"] else "MISMATCH"
        print(f"no request lost: {verdict}: Firefly answered {lost['firefly_2xx']} of {lost['firefly_requests']}"
              f" with 2xx; the mock counted {lost['mock_chat_requests']} chat completions in the same windows")
    for note in report["notes"]:
        print(f"note: {note}")


if __name__ == "__main__":
    sys.exit(main())
