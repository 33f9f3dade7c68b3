"""Per-record cost of decoding raw records: pydantic ``decode_raw`` against the msgspec fast
path (``meterline.schemas.fast_decode.decode_raw_fast``), on the demo traffic in one process.

Records come from ``meterline.demo.traffic.generate``, each encoded with
``meterline.schemas.encode`` (trajectory records included: the fast path hands them to pydantic).
The passes alternate; the best of ``--rounds`` is printed per path (the machine may be
shared), with the ratio. Prints, never asserts.

    python bench/bench_decode.py [--events 5000] [--rounds 15]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from meterline.demo.traffic import generate
from meterline.schemas import decode_raw, encode
from meterline.schemas.fast_decode import decode_raw_fast


def per_record_us(decode: Callable[[bytes], Any], records: list[bytes]) -> float:
    start = time.perf_counter()
    for data in records:
        decode(data)
    return (time.perf_counter() - start) / len(records) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    all_records = [encode(r) for r in generate(project="bench", events=args.events).records]
    events = [r for r in all_records if b'"type":"trajectory"' not in r]
    for label, records in (("all records", all_records), ("events only", events)):
        best = {"pydantic": float("inf"), "fast": float("inf")}
        for _ in range(args.rounds):
            best["pydantic"] = min(best["pydantic"], per_record_us(decode_raw, records))
            best["fast"] = min(best["fast"], per_record_us(decode_raw_fast, records))
        print(
            f"{label:12} ({len(records)} records): pydantic {best['pydantic']:.2f} us/record, "
            f"fast path {best['fast']:.2f} us/record, {best['pydantic'] / best['fast']:.1f}x"
        )


if __name__ == "__main__":
    main()
