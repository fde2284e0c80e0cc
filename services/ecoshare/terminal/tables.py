"""Tables that fit the output: a table when it fits the width, a list when it does not.

Rich shrinks a table that is wider than the console by wrapping cells and cutting what
cannot wrap with an ellipsis; an id cut to ``carrier…`` is useless to the next command.
When a table's natural width exceeds the console (a narrow terminal, or 80 columns
when output is piped), it is printed as a list instead: one block per row, every value
in full on its own line, never cut.
"""

from __future__ import annotations

from rich.console import Console, RenderableType
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text


def fits(table: Table, console: Console) -> bool:
    """Whether ``table`` prints at its natural width, nothing wrapped or cut."""
    unbounded = console.options.update(width=10_000, max_width=10_000)
    return Measurement.get(console, unbounded, table).maximum <= console.width


def _line(label: str, cell: RenderableType) -> Text:
    prefix = Text(f"  {label}: " if label else "  ")
    if isinstance(cell, Text):
        return prefix + cell
    if isinstance(cell, str):
        return prefix + Text.from_markup(cell)
    return prefix + Text(str(cell))


def _is_empty(cell: RenderableType) -> bool:
    return isinstance(cell, str | Text) and not str(cell).strip()


def print_table(table: Table, console: Console) -> None:
    """Print ``table`` as a table when it fits ``console``, else as a list of rows.

    In the list, the first column heads each row's block and every other column is a
    ``label: value`` line (empty values left out); lines are never wrapped or cut.
    """
    if fits(table, console):
        console.print(table)
        return
    if table.title:
        console.print(Text(str(table.title), style="bold"), soft_wrap=True)
    columns = table.columns
    labels = [str(column.header) for column in columns]
    rows = list(zip(*(list(column.cells) for column in columns), strict=True))
    for index, row in enumerate(rows):
        first, *rest = row
        if index:
            console.print()
        head = first if isinstance(first, Text) else Text.from_markup(str(first))
        if labels[0] and table.show_header:
            head = Text(f"{labels[0]}: ", style="bold") + head
        console.print(head, soft_wrap=True)
        for label, cell in zip(labels[1:], rest, strict=True):
            if not _is_empty(cell):
                console.print(_line(label, cell), soft_wrap=True)
