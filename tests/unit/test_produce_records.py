"""The record of one output: the compiled core's and the Python reference's behave alike,
and every path of a process makes the same type."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from typing import Any

import pytest

from ecoshare.config.settings import REPO_ROOT
from ecoshare.governance import rendering
from ecoshare.governance.cores import native_core
from ecoshare.governance.rendering import PythonProduce
from tests.unit.governed import RecordingRegistry, encode_event, make_engine, signed_message
from tests.unit.test_engine_admission import NOW, NOW_MS, TYPE, _event, _state

FIELDS = [field.name for field in dataclasses.fields(PythonProduce)]
VALUES: dict[str, Any] = {
    "topic": "ecoshare.deliver.carrier.StoreStatusChanged",
    "partition": 2,
    "key": b"loc-1",
    "value": b"\x00\x00\x00\x00\x01body",
    "headers": [("ecoshare-event-id", b"e-1"), ("ecoshare-agreement", b"agr-1:1")],
    "source": ("ecoshare.ingress.StoreStatusChanged", 2),
}
CHANGED: dict[str, Any] = {
    "topic": "ecoshare.quarantine",
    "partition": 3,
    "key": None,
    "value": b"other",
    "headers": [],
    "source": ("ecoshare.ingress.StoreStatusChanged", 0),
}


def _record_types() -> list[Any]:
    native = native_core()
    assert native is not None, "the compiled core ecoshare._native is not built"
    return [PythonProduce, native.Produce]


@pytest.mark.parametrize("record", _record_types(), ids=["python", "native"])
def test_a_record_holds_its_six_fields_by_position_or_by_name(record: Any) -> None:
    by_position = record(*VALUES.values())
    by_name = record(**VALUES)
    for name in FIELDS:
        assert getattr(by_position, name) == VALUES[name]
        assert getattr(by_name, name) is VALUES[name]
    assert by_position == by_name
    assert (by_position != by_name) is False


@pytest.mark.parametrize("record", _record_types(), ids=["python", "native"])
@pytest.mark.parametrize("name", list(CHANGED))
def test_records_differing_in_any_field_are_unequal(record: Any, name: str) -> None:
    changed = record(**{**VALUES, name: CHANGED[name]})
    assert changed != record(**VALUES)
    assert (changed == record(**VALUES)) is False


@pytest.mark.parametrize("record", _record_types(), ids=["python", "native"])
def test_a_record_is_unequal_to_other_types_and_unhashable(record: Any) -> None:
    produce = record(**VALUES)
    assert produce != tuple(VALUES.values())
    assert produce != None  # noqa: E711 (the comparison itself is under test)
    with pytest.raises(TypeError, match="unhashable"):
        hash(produce)
    assert "Produce(topic='ecoshare.deliver.carrier" in repr(produce)


@pytest.mark.parametrize("record", _record_types(), ids=["python", "native"])
def test_a_record_is_read_only(record: Any) -> None:
    produce = record(**VALUES)
    with pytest.raises(AttributeError):
        produce.value = b"rewritten"
    assert produce.value == VALUES["value"]


def test_with_the_core_built_every_path_makes_the_native_record() -> None:
    native = native_core()
    assert native is not None
    assert rendering.Produce is native.Produce
    for core in ("native", "python"):
        engine = make_engine(RecordingRegistry(), core)
        good = signed_message(TYPE, encode_event(TYPE, _event(1)), "postnl")
        bad = signed_message(TYPE, b"\x00\x00\x00\x00\x01\xff", "postnl", offset=1)
        result = engine.govern([good, bad], _state(), NOW, NOW_MS)
        topics = {output.topic for output in result.outputs}
        assert len(topics) == 3, topics  # a delivery, a quarantined copy, the audit block
        assert {type(output) for output in result.outputs} == {native.Produce}


def test_without_the_core_the_python_record_is_used() -> None:
    script = (
        "import sys; sys.modules['ecoshare._native'] = None\n"
        "from ecoshare.governance import rendering\n"
        "from ecoshare.governance.cores import native_core\n"
        "assert native_core() is None\n"
        "assert rendering.Produce is rendering.PythonProduce\n"
        "from tests.unit.governed import RecordingRegistry, encode_event, make_engine, "
        "signed_message\n"
        "from tests.unit.test_engine_admission import NOW, NOW_MS, TYPE, _event, _state\n"
        "engine = make_engine(RecordingRegistry(), 'python')\n"
        "message = signed_message(TYPE, encode_event(TYPE, _event(1)), 'postnl')\n"
        "result = engine.govern([message], _state(), NOW, NOW_MS)\n"
        "print(engine.core, sorted({type(o).__name__ for o in result.outputs}), "
        "len(result.outputs))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        env={"PYTHONPATH": f"{REPO_ROOT / 'services'}:{REPO_ROOT}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "python ['PythonProduce'] 2"
