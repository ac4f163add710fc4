"""Server time of the web application's recommendations for a user with 50 ratings (a benchmark, not a test).

Starts ``fastmf web --workers WORKERS`` (default: one per CPU) on 127.0.0.1 (a free port, a
throw-away home folder) serving MODEL with its catalogue DATA, registers a user through the site,
stores 50 of one real catalogue user's ratings through ``POST /api/ratings``, then sends REQUESTS
requests, CONCURRENCY at a time, to the
recommendations page and to ``GET /api/recommend``. Each recommendation folds the user's stored
ratings into the served model. Reported per endpoint: the server time of each response (its
``Server-Timing`` header: session, user, database, fold-in, ranking and template, without the
network and the WSGI server), p50 and p99, and the time measured by the client.

    python3 bench/web_latency.py                       # ml-latest-small, an ALS model trained once (cached)
    python3 bench/web_latency.py --data ~/.cache/fastmf/bench/synth-v3-ml32m-x1-seed42 \\
        --model ~/.cache/fastmf/bench/web/als-synth-v3-ml32m-x1-seed42.fastmf

Without ``--model`` an ALS model with the default settings is trained on DATA and kept in
``~/.cache/fastmf/bench/web/``. Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

import fastmf

CACHE = Path(os.environ.get("FASTMF_BENCH_CACHE", Path.home() / ".cache" / "fastmf" / "bench")) / "web"
TIMING = re.compile(r"app;dur=([0-9.]+)")
PASSWORD = "bench-Horse-battery-9"


def cached_model(data: str | None) -> str:
    """An ALS model with the default settings trained on ``data`` (once; kept in the cache)."""
    name = "ml-latest-small" if data is None else Path(data).resolve().name
    path = CACHE / f"als-{name}.fastmf"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        print(f"training ALS on {name} into {path} ...", file=sys.stderr)
        fastmf.ALS().fit(fastmf.load_dataset(data)).save(str(path))
    return str(path)


def user_ratings(data: str | None, n: int, seed: int) -> dict:
    """``n`` ratings of one catalogue user with at least ``n`` (chosen with ``seed``), ``{item id: stars}``."""
    ds = fastmf.load_dataset(data)
    counts = np.diff(ds.indptr)
    users = np.flatnonzero(counts >= n)
    u = np.random.default_rng(seed).choice(users)
    lo, hi = ds.indptr[u], ds.indptr[u] + n
    stars = np.clip(np.round(ds.data[lo:hi] * 2) / 2, 0.5, 5.0)
    return {str(ds.item_map.ids[i].item()): float(s) for i, s in zip(ds.indices[lo:hi], stars)}


def start_server(model: str, data: str | None, home: str, workers: int) -> tuple[subprocess.Popen, str]:
    command = [sys.executable, "-m", "fastmf", "web", "--model", model, "--home", home, "--port", "0", "--quiet"]
    command += ["--workers", str(workers)]
    if data:
        command += ["--data", data]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTMF_WEB_")}
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    for line in proc.stderr:
        print(line.rstrip(), file=sys.stderr)
        found = re.search(r"serving at (http://\S+?)/ ", line)
        if found:
            return proc, found.group(1)
    proc.wait()
    raise SystemExit(f"fastmf web stopped before serving (exit code {proc.returncode})")


class Client:
    """One logged-in session (cookies shared by the threads; each request opens its own connection)."""

    def __init__(self, base: str):
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def csrf(self) -> str:
        return next(c.value for c in self.jar if c.name == "csrftoken")

    def get(self, path: str):
        with self.opener.open(self.base + path, timeout=60) as r:
            body = r.read()
            return r.status, r.headers.get("Server-Timing", ""), body

    def post(self, path: str, data: bytes, content_type: str):
        req = urllib.request.Request(
            self.base + path,
            data=data,
            method="POST",
            headers={"Content-Type": content_type, "X-CSRFToken": self.csrf(), "Referer": self.base + path},
        )
        with self.opener.open(req, timeout=60) as r:
            return r.status, r.read()

    def register(self, username: str) -> None:
        self.get("/accounts/register/")
        form = {"username": username, "password1": PASSWORD, "password2": PASSWORD, "csrfmiddlewaretoken": self.csrf()}
        self.post("/accounts/register/", urllib.parse.urlencode(form).encode(), "application/x-www-form-urlencoded")


def measure(client: Client, path: str, requests: int, concurrency: int) -> dict:
    def one(_):
        start = time.perf_counter()
        status, timing, _body = client.get(path)
        wall = (time.perf_counter() - start) * 1000
        if status != 200:
            raise SystemExit(f"{path}: HTTP {status}")
        return float(TIMING.search(timing).group(1)), wall

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(2 * concurrency)))  # warm-up: connections, caches, the first fold-in
        start = time.perf_counter()
        results = np.array(list(pool.map(one, range(requests))))
        seconds = time.perf_counter() - start
    server, wall = results[:, 0], results[:, 1]
    return {
        "path": path,
        "requests": requests,
        "concurrency": concurrency,
        "server_p50_ms": round(float(np.percentile(server, 50)), 2),
        "server_p99_ms": round(float(np.percentile(server, 99)), 2),
        "client_p50_ms": round(float(np.percentile(wall, 50)), 2),
        "client_p99_ms": round(float(np.percentile(wall, 99)), 2),
        "requests_per_second": round(requests / seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=None, help="the catalogue (default: the bundled ml-latest-small)")
    parser.add_argument("--model", default=None, help="the served model (default: ALS trained on DATA, cached)")
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--ratings", type=int, default=50, help="the user's stored ratings")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count(), help="fastmf web --workers (default: one per CPU)"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args()
    data = str(Path(args.data).expanduser()) if args.data else None
    model = str(Path(args.model).expanduser()) if args.model else cached_model(data)
    ratings = user_ratings(data, args.ratings, args.seed)
    home = tempfile.mkdtemp(prefix="fastmf-web-bench-")
    proc, base = start_server(model, data, home, args.workers)
    try:
        client = Client(base)
        client.register("bench")
        client.post("/api/ratings", json.dumps({"ratings": ratings}).encode(), "application/json")
        results = [
            measure(client, path, args.requests, args.concurrency) for path in ("/recommendations/", "/api/recommend")
        ]
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(home, ignore_errors=True)
    summary = {
        "model": model,
        "data": data or "ml-latest-small",
        "user_ratings": len(ratings),
        "cpus": os.cpu_count(),
        "workers": args.workers,
        "load_average": round(os.getloadavg()[0], 1),
        "results": results,
    }
    if args.json:
        print(json.dumps(summary))
        return
    print(
        f"{summary['data']}: {Path(model).name}, a user with {len(ratings)} ratings, "
        f"{args.requests} requests at concurrency {args.concurrency}, {args.workers} worker processes, "
        f"{os.cpu_count()} CPUs "
        f"(load average {summary['load_average']} at the end)"
    )
    for r in results:
        print(
            f"  {r['path']:<18} server p50 {r['server_p50_ms']:7.2f} ms  p99 {r['server_p99_ms']:7.2f} ms"
            f"   (client p50 {r['client_p50_ms']:.2f} ms, p99 {r['client_p99_ms']:.2f} ms; "
            f"{r['requests_per_second']:.0f} requests/s)"
        )


if __name__ == "__main__":
    main()
