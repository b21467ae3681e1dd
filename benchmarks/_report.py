"""What every benchmark prints and writes: its rows as a rich table, and as JSON with ``--json PATH``."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console()

Column = str | tuple[str, str | Callable[[dict[str, Any]], Any]]  # a row key, or (header, key or cell function)


def print_table(title: str, rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> None:
    """One line per row; a missing key or ``None`` shows as an empty cell."""
    table = Table(title=title)
    cells: list[Callable[[dict[str, Any]], Any]] = []
    for col in columns:
        header, how = (col, col) if isinstance(col, str) else col
        table.add_column(header, justify="right")
        cells.append(how if callable(how) else (lambda r, k=how: r.get(k)))
    for r in rows:
        table.add_row(*("" if (v := cell(r)) is None else str(v) for cell in cells))
    console.print(table)


def write_json(path: Path | None, data: Any) -> None:
    """Write ``data`` (the rows, or whatever the benchmark's contract says) to ``path``, if given."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))
    console.log(f"wrote {path}")
