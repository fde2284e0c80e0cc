"""The one reader of the endpoints file a running platform writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ecoshare.config.endpoints import ENDPOINTS_FILE, read_endpoints
from ecoshare.errors import EcoshareError


def test_the_endpoints_a_running_platform_wrote_are_read_back(tmp_path: Path) -> None:
    written = {"bootstrap_servers": "127.0.0.1:9092", "topic_prefix": "t."}
    (tmp_path / ENDPOINTS_FILE).write_text(json.dumps(written))
    assert read_endpoints(tmp_path) == written


def test_no_endpoints_file_means_no_running_platform(tmp_path: Path) -> None:
    with pytest.raises(EcoshareError, match=r"no running platform found.*ecoshare up"):
        read_endpoints(tmp_path)


def test_an_unreadable_endpoints_file_is_a_named_error(tmp_path: Path) -> None:
    (tmp_path / ENDPOINTS_FILE).write_text("{half")
    with pytest.raises(EcoshareError, match="unreadable"):
        read_endpoints(tmp_path)
