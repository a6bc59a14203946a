"""The trace file, format version 1: records streamed as JSON lines while a run goes.

A trace file starts with a ``header`` record, holds one record per line in the
order the run made them, and ends with an ``end`` record saying how the run
ended. The record types (their fields are documented in docs/trace-format.md):

* ``service``: a message crossing a layer boundary on one node (``direction``
  ``down`` or ``up``, ``from_layer``, ``to_layer``; the user above the
  application layer is the layer ``user``);
* ``peer``: a message from a layer to the same layer on another node, with
  its send and delivery times;
* ``transition``: a protocol session's state change;
* ``event``: any other event an entity traced.

Message fields are the message's pydantic JSON-mode dump; numpy scalars and
arrays become plain numbers and lists, and anything else JSON cannot hold
becomes its ``str``. Records are written line by line as they are made (the
file is line-buffered), so a run that is interrupted leaves a file whose lines
are each complete; only the ``end`` record tells a whole trace from a prefix.

:func:`read_trace` reads a file back and checks it: the header, the version,
every line JSON, the ``end`` record last. A problem raises :class:`TraceError`
naming the line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from pydantic_core import to_jsonable_python

__all__ = ["FORMAT", "VERSION", "TraceError", "TraceWriter", "plain", "read_trace", "message_record"]

FORMAT = "qnetstack-trace"
VERSION = 1
RECORD_TYPES = ("service", "peer", "transition", "event")


class TraceError(ValueError):
    """A trace file that cannot be read: ``line`` is the 1-based line at fault."""

    def __init__(self, line: int, problem: str) -> None:
        self.line = line
        self.problem = problem
        super().__init__(f"line {line}: {problem}")


def _fallback(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    return str(value)


def plain(value: Any) -> Any:
    """``value`` as JSON-ready Python: pydantic's JSON mode, numpy made plain."""
    return to_jsonable_python(value, fallback=_fallback)


def message_record(t_ns: int, node: str, layer: str, msg: Any, **where: Any) -> dict[str, Any]:
    """A ``service`` or ``peer`` record of ``msg`` (``where`` holds the type and its routing fields)."""
    return {"t_ns": t_ns, "node": node, "layer": layer, **where, "kind": type(msg).__name__, "fields": plain(msg)}


class TraceWriter:
    """Writes the records of one run to ``path`` as they come (a callable sink).

    Opened before the run (the header is written at once), given each record,
    closed with :meth:`finish` and the run's end."""

    def __init__(
        self, path: str | Path, scenario: str, seed: int, nodes: Sequence[str] = (), links: Sequence[dict[str, Any]] | None = None
    ) -> None:
        # line-buffered: each record reaches the file when its line is complete
        self._out: TextIO | None = open(path, "w", encoding="utf-8", buffering=1)  # noqa: SIM115 (closed by finish/close)
        self.records = 0
        header = {"type": "header", "format": FORMAT, "version": VERSION, "scenario": scenario, "seed": seed, "nodes": list(nodes)}
        if links is not None:  # added in version 1 without a bump: readers ignore keys they do not know
            header["links"] = [dict(link) for link in links]
        self._write(header)

    def _write(self, record: dict[str, Any]) -> None:
        assert self._out is not None, "the trace file is closed"
        self._out.write(json.dumps(record, separators=(",", ":"), default=_fallback) + "\n")

    def __call__(self, record: dict[str, Any]) -> None:
        self._write(record)
        self.records += 1

    def finish(self, t_ns: int, status: str, reason: str, detail: str) -> None:
        """Write the ``end`` record and close the file."""
        self._write({"type": "end", "t_ns": t_ns, "status": status, "reason": reason, "detail": detail, "records": self.records})
        self.close()

    def close(self) -> None:
        """Close the file (without an ``end`` record: the trace reads as truncated)."""
        if self._out is not None:
            self._out.close()
            self._out = None


def _lines(path: str | Path) -> Iterator[tuple[int, str]]:
    with open(path, "rb") as source:
        for number, raw in enumerate(source, start=1):
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise TraceError(number, f"not UTF-8 text ({exc.reason})") from None


def read_trace(path: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """The header, the records and the end record of a version 1 trace file.

    Raises :class:`TraceError` naming the line when the file is not JSON lines,
    has no header of this format and version, or does not end with an ``end``
    record (a truncated trace); ``OSError`` when it cannot be read."""
    header: dict[str, Any] | None = None
    end: dict[str, Any] | None = None
    records: list[dict[str, Any]] = []
    number = 0
    for number, line in _lines(path):
        if end is not None:
            raise TraceError(number, "a record after the end record")
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TraceError(number, f"not JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise TraceError(number, "not a JSON object")
        kind = record.get("type")
        if header is None:
            if kind != "header" or record.get("format") != FORMAT:
                raise TraceError(number, f"not a {FORMAT} file (its first line is not its header)")
            if record.get("version") != VERSION:
                raise TraceError(number, f"trace format version {record.get('version')!r}; this reads version {VERSION}")
            header = record
        elif kind == "end":
            end = record
        elif kind in RECORD_TYPES:
            if not isinstance(record.get("t_ns"), int) or not isinstance(record.get("node"), str):
                raise TraceError(number, f"a {kind} record without an integer t_ns and a node")
            records.append(record)
        else:
            raise TraceError(number, f"unknown record type {kind!r}")
    if header is None:
        raise TraceError(1, "empty file: no header")
    if end is None:
        raise TraceError(number, "truncated: the trace ends without its end record")
    return header, records, end
