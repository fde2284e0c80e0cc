"""The naive baseline: a Faust agent that forwards each event with ``await topic.send()``.

Run as ``python -m bench.naive_faust BOOTSTRAP IN_TOPIC OUT_PREFIX FANOUT COUNT RESULT``;
writes {"events", "seconds"} to RESULT once COUNT events were forwarded FANOUT times.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import faust


def main() -> None:
    bootstrap, in_topic, out_prefix, fanout, count, result = sys.argv[1:7]
    expected = int(count)
    app = faust.App(
        f"bench-naive-{int(time.time())}",
        broker=f"kafka://{bootstrap}",
        value_serializer="raw",
        key_serializer="raw",
        broker_session_timeout=6.0,
        topic_allow_declare=False,
        topic_disable_leader=True,
        web_enabled=False,
        store="memory://",
        datadir=f"/tmp/{Path(result).stem}-faust",
    )
    source = app.topic(in_topic, value_serializer="raw", key_serializer="raw")
    outputs = [app.topic(f"{out_prefix}{i}", value_serializer="raw") for i in range(int(fanout))]
    seen = {"n": 0, "first": 0.0}

    @app.agent(source)
    async def forward(stream):  # type: ignore[no-untyped-def]
        async for key, value in stream.items():
            if not seen["n"]:
                seen["first"] = time.perf_counter()
            for output in outputs:
                await output.send(key=key, value=value)
            seen["n"] += 1
            if seen["n"] == expected:
                seconds = time.perf_counter() - seen["first"]
                report = json.dumps({"events": expected, "seconds": seconds})
                Path(result).write_text(report)  # noqa: ASYNC240 - once, at the very end
                await app.stop()

    app.main = None  # type: ignore[assignment]
    worker = faust.Worker(app, loglevel="WARNING", quiet=True)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
