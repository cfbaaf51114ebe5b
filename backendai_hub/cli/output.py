"""How the CLI prints: a table of rows, one object as key/value lines, or JSON."""

from __future__ import annotations

import json
from typing import Any, Sequence

from ..host_permissions import HOST_PERMISSIONS
from ..policy import format_slots, slots_from_json


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if key == "total_resource_slots":
        return format_slots(slots_from_json(value))
    if key == "allowed_vfolder_hosts" and isinstance(value, dict):
        return ",".join(h if len(p) == len(HOST_PERMISSIONS) else f"{h}({','.join(p)})"
                        for h, p in value.items()) or "-"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value)) or "-"
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items()) or "-"
    return str(value)


def emit(rows: list[dict] | dict, columns: Sequence[str], output: str, *, single: bool = False) -> None:
    if output == "json":
        print(json.dumps(rows, indent=2, sort_keys=False))
        return
    if single:
        assert isinstance(rows, dict)
        width = max(map(len, rows))
        for k, v in rows.items():
            print(f"{k.ljust(width)}  {_cell(k, v)}")
        return
    assert isinstance(rows, list)
    table = [[c.upper() for c in columns]] + [[_cell(c, r.get(c)) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(columns))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
