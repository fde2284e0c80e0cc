"""The compiled scanner under the shared differential fuzzer and its regression corpus.

The same harness that holds the Python scanner to strict Avro readers
(:mod:`tests.fuzz.differential`) holds the native one, with the same budget; the
corpus of bodies that once told a scanner and the oracles apart is replayed too.
"""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

from tests.fuzz.differential import corpus_cases, hunt_differences, native_scan, python_scan
from tests.unit.test_scanner_strictness import FUZZ_SECONDS


@pytest.mark.parametrize("case", corpus_cases(), ids=lambda case: case["name"])
def test_native_regression_corpus(case: dict[str, Any]) -> None:
    body = bytes.fromhex(case["body_hex"])
    assert native_scan(case["schema"], body) is case["accepted"]


def test_the_fuzzer_finds_no_difference_in_the_native_scanner() -> None:
    seed = int(os.environ.get("ECOSHARE_FUZZ_SEED", time.time()))
    report = hunt_differences(native_scan, seconds=FUZZ_SECONDS, seed=seed, max_differences=5)
    print(f"seed {seed}: {report.summary()}")
    assert report.tried > 0
    assert not report.differences, [
        (d.body.hex(), d.scanner, d.oracle, d.schema) for d in report.differences
    ]


def test_the_two_scanners_agree_on_the_fuzzers_bodies() -> None:
    seed = int(os.environ.get("ECOSHARE_FUZZ_SEED", time.time()))

    def both(schema: dict[str, Any], body: bytes) -> bool:
        verdict = native_scan(schema, body)
        assert verdict is python_scan(schema, body), body.hex()
        return verdict

    report = hunt_differences(both, seconds=FUZZ_SECONDS, seed=seed, max_differences=5)
    assert report.tried > 0
    assert not report.differences
