"""The package metadata installs without deprecation noise and pins what the code needs."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

PYPROJECT = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())


def test_the_licence_is_an_spdx_expression_not_the_deprecated_table() -> None:
    # A `license = {text = ...}` table makes setuptools warn on every install.
    assert PYPROJECT["project"]["license"] == "Apache-2.0"
    assert not any(
        classifier.startswith("License ::")
        for classifier in PYPROJECT["project"].get("classifiers", [])
    )
    [setuptools] = [
        r for r in PYPROJECT["build-system"]["requires"] if re.match(r"setuptools\b(?!-)", r)
    ]
    minimum = re.fullmatch(r"setuptools>=(\d+)", setuptools)
    assert minimum is not None and int(minimum.group(1)) >= 77  # SPDX license expressions


def test_docs_assets_and_schema_validation_are_pinned() -> None:
    assert "fastapi-offline==1.7.7" in PYPROJECT["project"]["dependencies"]
    assert "jsonschema==4.26.0" in PYPROJECT["project"]["optional-dependencies"]["dev"]
