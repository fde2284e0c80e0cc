"""``ecoshare acl``: the Kafka ACLs of ``ecoshare.domain.access``, from a governance file.

``deploy/kafka/partner-access.sh`` applies the ``--output args`` lines with
``kafka-acls.sh``, so those lines must be exactly the tool's arguments.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GOVERNANCE = REPO / "examples" / "postnl" / "governance.yaml"


def ecoshare(*arguments: str, prefix: str = "") -> subprocess.CompletedProcess[str]:
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith("ECOSHARE_")
    }
    environment["ECOSHARE_TOPIC_PREFIX"] = prefix
    return subprocess.run(
        [sys.executable, "-m", "ecoshare.cli.main", *arguments],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
        check=False,
    )


def test_args_lines_are_kafka_acls_arguments_derived_from_the_agreements() -> None:
    found = ecoshare(
        "acl",
        "franchise-shops",
        "carrier-north",
        "--file",
        str(GOVERNANCE),
        "-o",
        "args",
        prefix="x.",
    )
    assert found.returncode == 0, found.stderr
    lines = set(found.stdout.splitlines())
    assert lines == {
        # franchise-shops publishes only StoreStatusChanged under its agreements.
        "--add --allow-principal User:franchise-shops --operation Write"
        " --topic x.ingress.StoreStatusChanged --resource-pattern-type LITERAL",
        "--add --allow-principal User:franchise-shops --operation Describe"
        " --topic x.ingress.StoreStatusChanged --resource-pattern-type LITERAL",
        "--add --allow-principal User:carrier-north --operation Read"
        " --topic x.deliver.carrier-north. --resource-pattern-type PREFIXED",
        "--add --allow-principal User:carrier-north --operation Describe"
        " --topic x.deliver.carrier-north. --resource-pattern-type PREFIXED",
        "--add --allow-principal User:carrier-north --operation Read"
        " --group carrier-north. --resource-pattern-type PREFIXED",
        "--add --allow-principal User:carrier-north --operation Describe"
        " --group carrier-north. --resource-pattern-type PREFIXED",
    }


def test_json_lists_every_partner_when_none_is_named() -> None:
    found = ecoshare("acl", "--file", str(GOVERNANCE), "-o", "json")
    assert found.returncode == 0, found.stderr
    principals = {row["principal"] for row in json.loads(found.stdout)}
    assert principals == {
        f"User:{partner}"
        for partner in (
            "postnl",
            "retail-chain",
            "franchise-shops",
            "carrier-north",
            "carrier-south",
            "consumer-app",
        )
    }


def test_an_unknown_partner_or_output_is_refused_with_exit_code_2() -> None:
    unknown = ecoshare("acl", "nobody", "--file", str(GOVERNANCE))
    assert unknown.returncode == 2
    assert "no partner 'nobody'" in unknown.stderr
    assert unknown.stdout == ""
    wrong = ecoshare("acl", "--file", str(GOVERNANCE), "-o", "xml")
    assert wrong.returncode == 2
    assert "--output must be one of table, json, args" in wrong.stderr
