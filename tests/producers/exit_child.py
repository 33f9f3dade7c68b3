"""An agent process for the exit-path tests: records N events, then leaves by one path.

    python -m tests.producers.exit_child MODE N BOOTSTRAP TOPIC_PREFIX

BOOTSTRAP ``http://...``: the HTTP transport to that gateway (``meterline.init(endpoint=...)``).

Events are AgentSight actions with ``idempotency_key=f"k{i}"`` (deterministic event ids).
"""

from __future__ import annotations

import atexit
import json
import multiprocessing
import os
import signal
import sys
import time

import meterline.producers


def record(n: int, tag: str = "") -> None:
    for i in range(n):
        meterline.producers.track_action(action_name="exit_test", duration_ms=1,
                               idempotency_key=f"{tag}k{i}")


def init(bootstrap: str, prefix: str, **options: object) -> meterline.producers.MeterlineClient:
    if bootstrap.startswith("http"):  # the HTTP transport: BOOTSTRAP is the gateway's URL
        return meterline.init(endpoint=bootstrap, api_key="mlk_exit_key", project="exit",
                              max_queue=100_000, auto_instrument=False, **options)
    return meterline.init(bootstrap, topic_prefix=prefix, project="exit",
                          max_queue=100_000, auto_instrument=False, **options)


def child_main(n: int, bootstrap: str, prefix: str, tag: str) -> None:
    init(bootstrap, prefix)  # the child creates its own client, as docs/sdk.md says
    record(n, tag)


def inherited_child(n: int, tag: str) -> None:
    record(n, tag)  # the client the parent created before forking


def main() -> None:
    mode, n, bootstrap, prefix = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    if mode in ("fork", "forkserver"):
        ctx = multiprocessing.get_context(mode)
        p = ctx.Process(target=child_main, args=(n, bootstrap, prefix, ""))
        p.start()
        p.join(120)
        sys.exit(p.exitcode)
    if mode == "fork-inherited":
        init(bootstrap, prefix)
        p = multiprocessing.get_context("fork").Process(target=inherited_child, args=(n, "c"))
        p.start()
        p.join(120)
        record(n, "p")  # the parent's client still works after the fork
        sys.exit(p.exitcode)
    if mode == "app-handler":
        def on_term(signum: int, frame: object) -> None:
            print("app handler ran", flush=True)
            sys.exit(3)

        signal.signal(signal.SIGTERM, on_term)
    failures: list[str] = []
    if mode.startswith("down"):
        atexit.register(  # runs after the client's own exit hook (atexit is LIFO)
            lambda: print(json.dumps({**meterline.producers.get_client().stats.snapshot(),
                                      "on_error": len(failures)}), flush=True))
        init(bootstrap, prefix, on_error=lambda msg, exc: failures.append(msg))
    else:
        init(bootstrap, prefix)
    record(n)
    if mode in ("sigterm", "app-handler"):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(60)  # the handler ends the process before this returns
    elif mode == "sigint":
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(60)


if __name__ == "__main__":
    main()
