"""The engine says which core runs and can be forced to either."""

from __future__ import annotations

import logging

import pytest

from ecoshare.governance import cores
from ecoshare.governance.cores import NativeCoreMissingError, select_core
from ecoshare.governance.dedup import DedupWindow
from tests.unit.governed import RecordingRegistry, make_engine


def test_the_native_core_is_built_and_chosen_by_default(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=cores.__name__)
    module = select_core("auto")
    assert module is not None, "the compiled core ecoshare._native is not built"
    assert "governance engine: native core" in caplog.text


def test_python_can_be_forced(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=cores.__name__)
    engine = make_engine(RecordingRegistry(), "python")
    assert engine.core == "python"
    assert type(engine.new_window()) is DedupWindow
    assert "python core (forced by engine=python)" in caplog.text


def test_auto_falls_back_to_python_when_the_extension_is_missing(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=cores.__name__)
    monkeypatch.setattr(cores, "_loaded", [None])
    assert select_core("auto") is None
    assert "the native extension is not built" in caplog.text
    with pytest.raises(NativeCoreMissingError, match="ECOSHARE_ENGINE=native"):
        select_core("native")


def test_an_unknown_engine_choice_is_refused() -> None:
    with pytest.raises(ValueError, match="engine must be one of auto, native, python"):
        select_core("fast")
