#!/usr/bin/env python3
"""Transcoding cost: a transcoded stream against a passed-through one, through Firefly.

Starts the mock upstream (`firefly-mock`, no delay) and Firefly (`firefly serve`, fresh
temporary data directory, embedded SQLite), sets Firefly up through its HTTP API (admin
login; two channels at the mock: model `bench-openai` on an `openai` channel, model
`bench-anthropic` on an `anthropic` one; a price for each model; credits; an API key),
then streams the same prompt (`max_tokens` 32) with `loadgen` in four scenarios:

    openai→openai        POST /v1/chat/completions  model bench-openai     bytes passed through
    openai→anthropic     POST /v1/chat/completions  model bench-anthropic  transcoded
    anthropic→anthropic  POST /v1/messages          model bench-anthropic  bytes passed through
    anthropic→openai     POST /v1/messages          model bench-openai     transcoded

(client format → channel format), interleaved for R rounds, each run W s warm-up then D s
measured. Odd rounds run them in this order, even rounds in the reverse one, so each
transcoded scenario runs right next to its pass-through one, before it in one round and
after it in the next: a slow drift of the machine (or of Firefly) lands on both alike. Reported
per scenario, median over rounds: p50 / p99 latency and TTFB p50 (µs), rps; and the
transcoding cost, the transcoded scenario minus the pass-through one of the same client
format (openai→anthropic − openai→openai, anthropic→openai − anthropic→anthropic).
Checks: no request failed (ok == requests, streams complete: `data: [DONE]` for OpenAI
clients, `message_stop` for Anthropic ones), and the mock's own counter for the channel's
endpoint grew by exactly the 2xx answers Firefly gave (exit code 1 otherwise).

    python3 bench/formats.py [--rounds 3] [--duration 5] [--warmup 1] [--concurrency 1,16]

Reuses `bench/relay.py`'s helpers. Everything listens on 127.0.0.1 only; every child is
stopped on exit, also on error or Ctrl-C. Python 3.11 standard library; Linux.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import importlib.util
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# relay.py is a script, not a package: load it by path so this works from any directory.
_spec = importlib.util.spec_from_file_location("firefly_bench_relay", Path(__file__).resolve().parent / "relay.py")
relay = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(relay)

BenchError, Child, HOST, REPO, RELEASE, RESULTS = (
    relay.BenchError, relay.Child, relay.HOST, relay.REPO, relay.RELEASE, relay.RESULTS)

PROMPT = "Say hello in a short sentence."
MAX_TOKENS = 32
ANTHROPIC_VERSION = "2023-06-01"

# Client model → (channel provider, the upstream model name the mock is asked for).
MODELS = {
    "bench-openai": ("openai", "gpt-4o-mini"),
    "bench-anthropic": ("anthropic", "claude-sonnet-4-5"),
}
# What a complete stream ends with, per client format (trailing whitespace aside).
STREAM_END = {
    "openai": "data: [DONE]",
    "anthropic": 'event: message_stop\ndata: {"type":"message_stop"}',
}
PATHS = {"openai": "/v1/chat/completions", "anthropic": "/v1/messages"}
# The mock's counter for the endpoint a channel of this provider calls.
MOCK_COUNTER = {"openai": "chat_completions", "anthropic": "messages"}

# name, client format, model, transcoded, the pass-through scenario it is compared with.
SCENARIOS = [
    ("openai→openai", "openai", "bench-openai", False, None),
    ("openai→anthropic", "openai", "bench-anthropic", True, "openai→openai"),
    ("anthropic→anthropic", "anthropic", "bench-anthropic", False, None),
    ("anthropic→openai", "anthropic", "bench-openai", True, "anthropic→anthropic"),
]

BINARIES = {"firefly": "firefly", "firefly-mock": "firefly-mock", "loadgen": "firefly-bench"}
# What the three binaries are built from (tests and benches excluded: they change no binary).
SOURCE_ROOTS = ["crates", "bench/src", "bench/Cargo.toml", "Cargo.toml", "Cargo.lock"]
SKIP_DIRS = {"tests", "benches", "target", "fuzz"}
BUILD_TIMEOUT_S = 3600


# ---------------------------------------------------------------- building


def newest_source() -> tuple[float, Path | None]:
    newest, which = 0.0, None

    def visit(path: Path) -> None:
        nonlocal newest, which
        if path.is_dir():
            for child in path.iterdir():
                if child.name not in SKIP_DIRS and not child.name.startswith("."):
                    visit(child)
        elif path.is_file():
            mtime = path.stat().st_mtime
            if mtime > newest:
                newest, which = mtime, path

    for root in SOURCE_ROOTS:
        visit(REPO / root)
    return newest, which


def binaries(force: bool) -> dict[str, Path]:
    """The release binaries, built (niced) when missing, older than the newest source file
    or with --build."""
    paths = {name: RELEASE / name for name in BINARIES}
    newest, which = newest_source()
    stale = [n for n, p in paths.items() if force or not p.is_file() or p.stat().st_mtime < newest]
    if stale:
        why = ", ".join(f"{n} {'missing' if not paths[n].is_file() else 'older than ' + str(which.relative_to(REPO))}"
                        for n in stale) if not force else "--build"
        cmd = ["nice", "-n", "5", "cargo", "build", "--release", "-p", "firefly", "-p", "firefly-mock", "-p", "firefly-bench"]
        print(f"building ({why}): {' '.join(cmd)}", flush=True)
        try:
            done = subprocess.run(cmd, cwd=REPO, timeout=BUILD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise BenchError(f"the build took more than {BUILD_TIMEOUT_S} s") from None
        if done.returncode != 0:
            raise BenchError(f"`{' '.join(cmd)}` failed")
        for name, path in paths.items():
            if not path.is_file():
                raise BenchError(f"the build made no {path}")
    return paths


# ---------------------------------------------------------------- Firefly


def setup_firefly(port: int, mock_base: str) -> str:
    """Admin login, the two channels, prices, credits and an API key; returns the key."""
    login = relay.expect(port, "POST", "/api/auth/login", 200,
                         {"email": relay.ADMIN_EMAIL, "password": relay.ADMIN_PASSWORD})
    token, admin_id = login["access_token"], login["user"]["id"]
    origin = mock_base.removesuffix("/v1")
    for model, (provider, upstream_model) in MODELS.items():
        channel = {
            "name": model, "provider": provider,
            # OpenAI-compatible base URLs end in /v1; Anthropic's is the origin.
            "base_url": mock_base if provider == "openai" else origin,
            "keys": [relay.UPSTREAM_KEY], "models": [model], "model_map": {model: upstream_model},
        }
        relay.expect(port, "POST", "/api/admin/channels", 201, channel, token)
        relay.expect(port, "PUT", f"/api/admin/models/{model}", 200,
                     {"input_per_mtok": 1000, "output_per_mtok": 1000}, token)
    grant = {"kind": "grant", "amount": 1_000_000_000_000, "note": "formats benchmark"}
    relay.expect(port, "POST", f"/api/admin/users/{admin_id}/credits", 201, grant, token)
    return relay.expect(port, "POST", "/api/keys", 201, {"name": "formats-bench"}, token)["key"]


def request_body(client: str, model: str) -> dict:
    messages = [{"role": "user", "content": PROMPT}]
    # Field order as each format's documentation writes it; the content is the same.
    if client == "anthropic":
        return {"model": model, "max_tokens": MAX_TOKENS, "messages": messages, "stream": True}
    return {"model": model, "messages": messages, "max_tokens": MAX_TOKENS, "stream": True}


def client_headers(client: str, key: str) -> dict[str, str]:
    if client == "anthropic":
        return {"x-api-key": key, "anthropic-version": ANTHROPIC_VERSION}
    return {"authorization": f"Bearer {key}"}


def probe(port: int, key: str, client: str, model: str) -> dict:
    """One streamed request, checked for 200 and a complete stream."""
    conn = http.client.HTTPConnection(HOST, port, timeout=relay.REQUEST_TIMEOUT_S)
    try:
        headers = {"content-type": "application/json"} | client_headers(client, key)
        conn.request("POST", PATHS[client], body=json.dumps(request_body(client, model)).encode(), headers=headers)
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    text = body.decode(errors="replace")
    complete = text.rstrip().endswith(STREAM_END[client])
    return {"status": resp.status, "bytes": len(body), "complete": complete,
            "content_type": resp.getheader("content-type"), "tail": text[-120:]}


def mock_counts(mock_port: int) -> dict:
    return relay.expect(mock_port, "GET", "/_mock/stats", 200)


# ---------------------------------------------------------------- load


def loadgen(binary: Path, port: int, key: str, client: str, model: str, concurrency: int,
            args: argparse.Namespace) -> dict:
    argv = [
        str(binary), "--url", f"http://{HOST}:{port}{PATHS[client]}", "--concurrency", str(concurrency),
        "--duration", str(args.duration), "--warmup", str(args.warmup),
        "--threads", str(args.loadgen_threads), "--timeout", str(args.request_timeout),
        "--body", json.dumps(request_body(client, model), separators=(",", ":")),
        "--stream", "--stream-end", STREAM_END[client],
    ]
    for name, value in client_headers(client, key).items():
        argv += ["--header", f"{name}: {value}"]
    limit = args.warmup + args.duration + args.request_timeout + 30
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired:
        raise BenchError(f"loadgen ran longer than {limit:.0f} s") from None
    if done.returncode != 0 or not done.stdout.strip():
        raise BenchError(f"loadgen failed ({done.returncode}): {done.stderr.strip()}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def summarize(runs: dict[str, list[dict]]) -> dict[str, dict]:
    median = relay.median
    out: dict[str, dict] = {}
    for name, rs in runs.items():
        out[name] = relay.round_medians(rs) | {
            "body_bytes_per_request": median([r["body_bytes"] / r["requests"] for r in rs if r["requests"]]),
            "ok": sum(r["ok"] for r in rs),
        }
    for name, _client, _model, transcoded, base in SCENARIOS:
        s = out.get(name)
        if s is None:
            continue
        s["transcoded"] = transcoded
        s["compared_with"] = base
        for q in ("p50_us", "p99_us", "ttfb_p50_us"):
            b = out.get(base) if base else None
            have = b is not None and s[q] is not None and b[q] is not None
            s[f"cost_{q}"] = s[q] - b[q] if have else None
        if base and base in runs:
            # The same differences within each round, between adjacent runs.
            for q in ("p50_us", "p99_us"):
                s[f"cost_{q}_per_round"] = [t[q] - p[q] for t, p in zip(runs[name], runs[base])
                                            if t[q] is not None and p[q] is not None]
    return out


def markdown(results: list[dict]) -> str:
    fmt = relay.fmt
    lines = [
        "| c | client → channel | path | rps | p50 µs | p99 µs | TTFB p50 µs | transcoding cost p50 µs"
        " | transcoding cost p99 µs | errors |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for scenario in results:
        for name, s in scenario["summary"].items():
            path = "transcoded" if s["transcoded"] else "pass-through"
            lines.append(
                f"| {scenario['concurrency']} | {name} | {path} | {fmt(s['rps'])} | {fmt(s['p50_us'])}"
                f" | {fmt(s['p99_us'])} | {fmt(s['ttfb_p50_us'])} | {fmt(s['cost_p50_us'], signed=True)}"
                f" | {fmt(s['cost_p99_us'], signed=True)} | {s['errors']} / {s['requests']} |"
            )
    return "\n".join(lines)


# ---------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--concurrency", default="1", help="comma-separated concurrency levels (default 1; e.g. 1,16)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds per concurrency (default 3)")
    p.add_argument("--duration", type=float, default=5.0, help="measured seconds per run (default 5)")
    p.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds before each run (default 1)")
    p.add_argument("--request-timeout", type=float, default=30.0, help="loadgen's per-request timeout (default 30)")
    p.add_argument("--loadgen-threads", type=int, default=1, help="loadgen runtime threads (default 1)")
    p.add_argument("--firefly-env", action="append", default=[], metavar="KEY=VALUE",
                   help="extra environment for Firefly, such as FIREFLY_LOG__LEVEL=warn (repeatable)")
    p.add_argument("--build", action="store_true", help="run cargo build --release even if the binaries are fresh")
    p.add_argument("--out", type=Path, help="results file (default bench/results/formats-<UTC time>.json)")
    args = p.parse_args()
    try:
        args.concurrency = [int(c) for c in args.concurrency.split(",")]
    except ValueError:
        p.error("--concurrency takes comma-separated integers")
    if not all(1 <= c <= 1024 for c in args.concurrency):
        p.error("--concurrency levels must be 1 to 1024")
    if not 1 <= args.rounds <= 50 or not 0 < args.duration <= 600 or not 0 <= args.warmup <= 60:
        p.error("--rounds 1..50, --duration 0..600 s, --warmup 0..60 s")
    if not 0 < args.request_timeout <= 300 or not 1 <= args.loadgen_threads <= 64:
        p.error("--request-timeout 0..300 s, --loadgen-threads 1..64")
    for kv in args.firefly_env:
        if "=" not in kv or not kv.startswith("FIREFLY_"):
            p.error(f"--firefly-env {kv!r}: expected FIREFLY_KEY=VALUE")
    return args


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, relay.on_sigterm)
    try:
        paths = binaries(args.build)
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1

    workdir = Path(tempfile.mkdtemp(prefix="firefly-formats-"))
    children: list[Child] = []
    report: dict = {"started_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                    "machine": relay.machine(), "prompt": PROMPT, "max_tokens": MAX_TOKENS,
                    "models": {m: {"provider": p, "upstream_model": u} for m, (p, u) in MODELS.items()},
                    "settings": {"rounds": args.rounds, "duration_s": args.duration, "warmup_s": args.warmup,
                                 "loadgen_threads": args.loadgen_threads, "firefly_env": args.firefly_env},
                    "scenarios": [], "probes": {}}
    try:
        mock = Child("mock", [str(paths["firefly-mock"]), "--listen", f"{HOST}:0"], workdir)
        children.append(mock)
        mock_base = mock.first_line()
        mock_port = relay.port_of(mock_base)
        print(f"mock:    {mock_base} (pid {mock.pid})", flush=True)

        firefly, port = relay.start_firefly(paths["firefly"], workdir, args.firefly_env)
        children.append(firefly)
        relay.wait_ready(firefly, port)
        key = setup_firefly(port, mock_base)
        print(f"firefly: {HOST}:{port} (pid {firefly.pid}); channels bench-openai -> openai {mock_base},"
              f" bench-anthropic -> anthropic {mock_base.removesuffix('/v1')}", flush=True)

        for name, client, model, _transcoded, _base in SCENARIOS:
            got = probe(port, key, client, model)
            report["probes"][name] = got
            if got["status"] != 200 or not got["complete"]:
                raise BenchError(f"probe {name}: status {got['status']}, complete stream {got['complete']};"
                                 f" body ends {got['tail']!r}; firefly log: {firefly.log_tail(5)}")
            print(f"  probe {name:20} 200, {got['bytes']} bytes, {got['content_type']}", flush=True)

        runs_total = len(args.concurrency) * args.rounds * len(SCENARIOS)
        eta = runs_total * (args.duration + args.warmup + 0.3)
        print(f"{runs_total} runs of {args.warmup:g}+{args.duration:g} s, about {eta / 60:.1f} min", flush=True)
        counted = {"firefly_2xx": 0, "firefly_requests": 0, "mock_requests": 0}
        for c in args.concurrency:
            runs: dict[str, list[dict]] = {s[0]: [] for s in SCENARIOS}
            for rnd in range(args.rounds):
                order = SCENARIOS if rnd % 2 == 0 else SCENARIOS[::-1]
                for name, client, model, _transcoded, _base in order:
                    counter = MOCK_COUNTER[MODELS[model][0]]
                    before = mock_counts(mock_port)[counter]
                    r = loadgen(paths["loadgen"], port, key, client, model, c, args)
                    r["mock_delta"] = mock_counts(mock_port)[counter] - before
                    r["round"] = rnd + 1
                    runs[name].append(r)
                    counted["firefly_2xx"] += r["ok"] + r["warmup_ok"]
                    counted["firefly_requests"] += r["requests"] + r["warmup_requests"]
                    counted["mock_requests"] += r["mock_delta"]
                    err = f"  ERRORS {r['errors']}: {r['first_error']}" if r["errors"] else ""
                    print(f"  c={c:<3} round {rnd + 1} {name:20} {r['rps']:8.0f} rps  p50 {r['p50_us']} µs"
                          f"  p99 {r['p99_us']} µs  ttfb p50 {r.get('ttfb_p50_us')} µs{err}", flush=True)
            report["scenarios"].append({"concurrency": c, "summary": summarize(runs), "runs": runs})

        errors = sum(s["errors"] for sc in report["scenarios"] for s in sc["summary"].values())
        empty = [f"c={sc['concurrency']} {n}" for sc in report["scenarios"] for n, s in sc["summary"].items()
                 if s["ok"] == 0]
        counted["lost"] = counted["firefly_2xx"] - counted["mock_requests"]
        report["checks"] = {"errors": errors, "no_errors": errors == 0 and not empty, "runs_without_ok": empty,
                            "no_request_lost": counted, "no_request_lost_ok": counted["lost"] == 0}

        print()
        print(markdown(report["scenarios"]))
        print()
        print("transcoding cost = transcoded minus the pass-through of the same client format"
              " (openai→anthropic − openai→openai; anthropic→openai − anthropic→anthropic), medians over rounds")
        for sc in report["scenarios"]:
            for name, s in sc["summary"].items():
                if s["transcoded"]:
                    print(f"  c={sc['concurrency']} {name}: cost per round (adjacent runs) p50 {s['cost_p50_us_per_round']} µs,"
                          f" p99 {s['cost_p99_us_per_round']} µs")
        print(f"errors: {errors} (ok == requests: {'OK' if errors == 0 and not empty else 'FAILED'})")
        verdict = "OK" if counted["lost"] == 0 else "MISMATCH"
        print(f"no request lost: {verdict}: Firefly answered {counted['firefly_2xx']} of {counted['firefly_requests']}"
              f" with 2xx; the mock counted {counted['mock_requests']} upstream requests in the same windows")
        out = args.out or RESULTS / f"formats-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        print(f"\nresults: {out}")
        return 0 if report["checks"]["no_errors"] and report["checks"]["no_request_lost_ok"] else 1
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        for child in reversed(children):
            code = child.stop()
            if code not in (0, -signal.SIGTERM):
                print(f"note: {child.name} exited with {code}; log: {child.log_tail(5)}", file=sys.stderr)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
