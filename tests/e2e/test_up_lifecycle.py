"""`ecoshare up` as an operator runs it: endpoints written, everything stopped on Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest


def _children_of(pid: int) -> set[int]:
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _env(state_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECOSHARE_")}
    env.update({"ECOSHARE_STATE_DIR": str(state_dir), "ECOSHARE_WORKERS": "1", **extra})
    return env


@pytest.mark.slow  # a whole platform up, then Ctrl-C
def test_up_writes_endpoints_and_ctrl_c_leaves_no_process_behind(
    tmp_path: Path, broker_kind: str
) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "ecoshare.cli.main", "up", "--no-api", "--broker", broker_kind],
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    endpoints_file = tmp_path / "endpoints.json"
    deadline = time.monotonic() + 90
    while not endpoints_file.exists():
        assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
        assert time.monotonic() < deadline, "ecoshare up did not write its endpoints"
        time.sleep(0.2)
    endpoints = json.loads(endpoints_file.read_text())
    assert set(endpoints) >= {"bootstrap_servers", "schema_registry_url", "metrics_urls"}
    assert endpoints["broker"] == broker_kind
    host, port = endpoints["bootstrap_servers"].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=2):
        pass
    children = _children_of(process.pid)
    assert len(children) >= 3  # broker, registry, worker

    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 0
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in children if _alive(pid)], "a child outlived ecoshare up"
    assert not endpoints_file.exists()


def test_a_busy_broker_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "ecoshare.cli.main", "up", "--no-api", "--broker", "tansu"],
            env=_env(tmp_path, ECOSHARE_BROKER_PORT=str(port)),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode != 0
    assert f"port {port} is already in use" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("variable", "value"), [("ECOSHARE_INGRESS_PARTITIONS", "zero"), ("ECOSHARE_WORKERS", "0")]
)
def test_an_invalid_setting_names_the_variable(tmp_path: Path, variable: str, value: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ecoshare.cli.main", "schemas", "list"],
        env=_env(tmp_path, **{variable: value}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert variable.removeprefix("ECOSHARE_").lower() in result.stderr.lower()


@pytest.mark.slow  # a whole platform up, then a second refused
def test_a_second_up_on_the_same_state_dir_refuses_and_leaves_the_first_alone(
    tmp_path: Path,
) -> None:
    first = subprocess.Popen(
        [sys.executable, "-m", "ecoshare.cli.main", "up", "--no-api", "--broker", "tansu"],
        env=_env(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        endpoints_file = tmp_path / "endpoints.json"
        deadline = time.monotonic() + 90
        while not endpoints_file.exists():
            assert first.poll() is None, "the first ecoshare up exited"
            assert time.monotonic() < deadline, "ecoshare up did not write its endpoints"
            time.sleep(0.2)
        written = endpoints_file.read_text()

        second = subprocess.run(
            [sys.executable, "-m", "ecoshare.cli.main", "up", "--no-api", "--broker", "tansu"],
            env={**_env(tmp_path), "COLUMNS": "60"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1
        assert f"a platform already runs on state directory {tmp_path}" in second.stderr
        assert f"(pid {first.pid})" in second.stderr
        assert "Traceback" not in second.stderr
        # The first platform's endpoints are untouched and it still serves.
        assert endpoints_file.read_text() == written
        assert first.poll() is None
        status = subprocess.run(
            [sys.executable, "-m", "ecoshare.cli.main", "status", "-o", "json"],
            env=_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=60,
        )
        broker = next(row for row in json.loads(status.stdout) if row["component"] == "broker")
        assert broker["up"] is True
    finally:
        first.send_signal(signal.SIGINT)
        first.wait(timeout=60)
    assert not (tmp_path / "endpoints.json").exists()


def test_up_with_kafka_and_no_java_says_so_in_one_line(tmp_path: Path) -> None:
    # A PATH with the Python interpreter but no java, and no JAVA_HOME.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    env = {k: v for k, v in _env(tmp_path).items() if k != "JAVA_HOME"}
    env["PATH"] = str(bin_dir)
    env["COLUMNS"] = "300"  # one line, unwrapped by the terminal width
    result = subprocess.run(
        [sys.executable, "-m", "ecoshare.cli.main", "up", "--broker", "kafka"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "needs a Java runtime" in lines[0] and "--broker tansu" in lines[0]


def _up_until_endpoints(env: dict[str, str], state_dir: Path) -> tuple[dict[str, str], str]:
    """Run `ecoshare up --no-api` until it writes its endpoints; stop it; return them
    and what it printed."""
    process = subprocess.Popen(
        [sys.executable, "-m", "ecoshare.cli.main", "up", "--no-api"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        endpoints_file = state_dir / "endpoints.json"
        deadline = time.monotonic() + 120
        while not endpoints_file.exists():
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            assert time.monotonic() < deadline, "ecoshare up did not write its endpoints"
            time.sleep(0.2)
        endpoints = json.loads(endpoints_file.read_text())
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    return endpoints, output


def test_up_without_java_chooses_tansu_and_says_why(tmp_path: Path) -> None:
    # A PATH with the Python interpreter but no java, and no JAVA_HOME.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    env = {k: v for k, v in _env(tmp_path).items() if k != "JAVA_HOME"}
    env["PATH"] = str(bin_dir)
    env["COLUMNS"] = "300"
    endpoints, output = _up_until_endpoints(env, tmp_path)
    assert endpoints["broker"] == "tansu"
    chosen = [line for line in output.splitlines() if "broker tansu:" in line]
    assert len(chosen) == 1, output
    assert "no Java runtime" in chosen[0]


@pytest.mark.brokers("kafka")
def test_up_where_java_is_found_chooses_apache_kafka_and_says_why(
    tmp_path: Path, broker_kind: str
) -> None:
    env = {**_env(tmp_path), "COLUMNS": "300"}
    endpoints, output = _up_until_endpoints(env, tmp_path)
    assert endpoints["broker"] == broker_kind == "kafka"
    chosen = [line for line in output.splitlines() if "broker kafka:" in line]
    assert len(chosen) == 1, output
    assert "Java runtime" in chosen[0] and "sustained load" in chosen[0]


def test_tansu_refuses_a_data_directory(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ecoshare.cli.main", "up", "--broker", "tansu"],
        env=_env(tmp_path, ECOSHARE_DATA_DIR=str(tmp_path / "data")),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "keeps everything in memory" in result.stderr
    assert "Traceback" not in result.stderr
