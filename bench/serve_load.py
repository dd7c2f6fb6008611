"""``mediamill serve`` under sustained concurrent load on loopback.

Starts ``python -m mediamill.cli serve`` as its own process (VoxCPM by default,
``--engine piper`` for Piper), warms it up, then runs ``--clients`` concurrent
clients posting short, different ``/v1/audio/speech`` requests for
``--seconds``. Clients honour ``Retry-After`` on 429 as voxcpm-http does.
Reported: requests/s (all answers) and 200s/s, status counts, transport
errors, p50/p95 latency of the 200s, and the server process's RSS after the
warm-up and after the load. The server's own limits apply: ``--max-pending``
requests in flight (its default, 16), 429 beyond.

With ``--sse-rounds N`` it runs N rounds of ``--clients`` concurrent
``stream_format=sse`` streams instead, each read to its end (429s waited out),
and reports the server's idle RSS after each round: whether a long-lived
server grows with its streaming traffic.

Without ``--model`` VoxCPM runs the tiny random checkpoint the tests use on
one CPU thread, so the figures are the server's overhead and back-pressure,
not a model's speed. On a GPU machine ``--model DIR --device cuda`` measures
a real checkpoint.

Usage: python bench/serve_load.py [--clients 32] [--seconds 30] [--warmup 5]
       [--engine voxcpm|piper] [--model DIR] [--device cpu] [--max-pending 16] [--sse-rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import save  # noqa: E402

KEY = "bench-serve-key-0123456789"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--engine", choices=["voxcpm", "piper"], default="voxcpm")
    parser.add_argument("--model", help="VoxCPM checkpoint folder (default: the tiny random test checkpoint)")
    parser.add_argument("--device", default="cpu", help="VOXCPM_DEVICE (default cpu)")
    parser.add_argument("--max-pending", type=int, default=16, help="MEDIAMILL_SERVE_MAX_PENDING (server default 16)")
    parser.add_argument(
        "--sse-rounds", type=int, default=0, help="rounds of concurrent SSE streams instead of the load"
    )
    args = parser.parse_args()

    from tests.helpers.loadgen import hammer, serve_process

    with tempfile.TemporaryDirectory(prefix="serve-load-") as tmp:
        root = Path(tmp)
        env = {
            "MEDIAMILL_SERVE_API_KEY": KEY,
            "MEDIAMILL_SERVE_MAX_PENDING": str(args.max_pending),
            "VOXCPM_DEVICE": args.device,
        }
        model = "piper (default voice)"
        if args.engine == "voxcpm":
            model = args.model
            if model is None:
                from tests.helpers.tiny_voxcpm import build

                model = str(build(root / "tiny", stop="early"))
                env["VOXCPM_CPU_THREADS"] = "1"
            env["VOXCPM_MODEL"] = model
        (root / "voices").mkdir()
        serve_args = ["--engine", args.engine, "--voices", str(root / "voices")]
        headers = {"Authorization": f"Bearer {KEY}"}
        with serve_process(env, serve_args, root / "server.log") as served:
            rss_start = served.rss_mb()
            if args.sse_rounds:
                save(
                    "serve_sse_rounds",
                    {
                        "engine": args.engine,
                        "model": model,
                        "clients": args.clients,
                        "max_pending": args.max_pending,
                        "rss_mb": {"started": round(rss_start, 1)},
                        "rounds": sse_rounds(served, args.clients, args.sse_rounds, headers),
                    },
                )
                return
            warm = asyncio.run(hammer(served.url, args.clients, args.warmup, headers))
            rss_warm = served.rss_mb()
            result = asyncio.run(hammer(served.url, args.clients, args.seconds, headers))
            rss_after = served.rss_mb()
    doc = {
        "engine": args.engine,
        "model": "tiny random VoxCPM2 (1 CPU thread)" if args.engine == "voxcpm" and not args.model else model,
        "device": args.device if args.engine == "voxcpm" else "cpu",
        "max_pending": args.max_pending,
        "warmup": {"seconds": args.warmup, "requests": warm.requests, "statuses": warm.summary()["statuses"]},
        **result.summary(),
        "unexpected": result.unexpected,
        "rss_mb": {
            "started": round(rss_start, 1),
            "after_warmup": round(rss_warm, 1),
            "after_load": round(rss_after, 1),
            "growth_under_load": round(rss_after - rss_warm, 1),
        },
    }
    save("serve_load", doc)


def sse_rounds(served, clients: int, rounds: int, headers: dict[str, str]) -> list[dict]:
    """Idle RSS (MB) after each round of ``clients`` concurrent SSE streams, with the round's time."""
    import time

    import httpx

    from tests.helpers.loadgen import sse_round

    text = "The lamps came on along the street, one by one. A dog barked twice and was quiet."
    found = []
    for n in range(1, rounds + 1):
        started = time.perf_counter()
        deltas = asyncio.run(sse_round(served.url, clients, text, headers, timeout_s=600))
        seconds = time.perf_counter() - started
        while httpx.get(served.url + "/health", timeout=10).json()["active"]:  # streams' clean-up ends last
            time.sleep(0.1)
        time.sleep(1)
        found.append(
            {
                "round": n,
                "seconds": round(seconds, 1),
                "cut_streams": deltas.count(-1),
                "idle_rss_mb": round(served.rss_mb(), 1),
            }
        )
        print(found[-1], flush=True)
    return found


if __name__ == "__main__":
    main()
