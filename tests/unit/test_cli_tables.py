"""Tables that fit: full values in a list when a table is wider than the output."""

from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table

from ecoshare.terminal.tables import print_table

CONSENT_ID = "0b8e6f9a-1c2d-4e5f-8a9b-0c1d2e3f4a5b"


def _consents() -> Table:
    table = Table(title="consents (1)")
    for column in ("consent", "subject", "grantee", "scope", "state"):
        table.add_column(column)
    table.add_row(CONSENT_ID, "owner-1", "carrier-north", "personal", "[green]active[/]")
    return table


def _printed(table: Table, width: int) -> str:
    out = io.StringIO()
    print_table(table, Console(file=out, width=width, color_system=None))
    return out.getvalue()


def test_a_table_too_wide_for_the_output_becomes_a_list_of_full_values() -> None:
    text = _printed(_consents(), 60)
    assert f"consent: {CONSENT_ID}" in text.splitlines()
    assert "  grantee: carrier-north" in text.splitlines()
    assert "  state: active" in text.splitlines()
    assert "…" not in text


def test_a_table_that_fits_stays_a_table() -> None:
    text = _printed(_consents(), 200)
    assert "┃ consent" in text
    assert CONSENT_ID in text


def test_markup_like_text_in_a_value_is_kept() -> None:
    table = Table(title="t")
    table.add_column("id")
    table.add_column("detail")
    table.add_row("x" * 70, r"a \[b] c")
    assert "  detail: a [b] c" in _printed(table, 40).splitlines()
