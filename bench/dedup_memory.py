"""Bytes per id of the duplicate-id window: the RSS growth of a fresh process adding
1,000,000 distinct ids (SDK-style UUIDs by default) to one window that holds them all.

    python -m bench.dedup_memory [--ids 1000000] [--core native|python] [--kind uuid|text]

Ids are generated in chunks and dropped once added, so what grows is the window.
"""

from __future__ import annotations

import argparse
import gc
import json
import uuid
from pathlib import Path

from ecoshare.governance.cores import select_core
from ecoshare.governance.dedup import DedupWindow

CHUNK = 10_000


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def new_window(core: str, capacity: int) -> DedupWindow:
    if core == "python":
        return DedupWindow(86_400_000, capacity)
    native = select_core("native")
    if native is None:
        raise SystemExit("the compiled core is not built (cd native && cargo build --release)")
    window: DedupWindow = native.DedupWindow(86_400_000, capacity)
    return window


def chunk_of_ids(kind: str, start: int) -> list[str]:
    if kind == "uuid":
        return [str(uuid.uuid4()) for _ in range(CHUNK)]
    return [f"order-{start + index:012d}" for index in range(CHUNK)]


def measure(ids: int, core: str, kind: str) -> dict[str, object]:
    window = new_window(core, ids)
    gc.collect()
    before = rss_bytes()
    for start in range(0, ids, CHUNK):
        window.add_all(chunk_of_ids(kind, start), start)
    gc.collect()
    grown = rss_bytes() - before
    assert len(window) == ids, len(window)
    return {"core": core, "kind": kind, "ids": ids, "bytes_per_id": round(grown / ids, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ids", type=int, default=1_000_000)
    parser.add_argument("--core", choices=("native", "python"), default="native")
    parser.add_argument("--kind", choices=("uuid", "text"), default="uuid")
    args = parser.parse_args()
    print(json.dumps(measure(args.ids, args.core, args.kind)))


if __name__ == "__main__":
    main()
