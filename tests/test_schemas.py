"""The committed JSON Schemas are exactly what the models generate."""

from __future__ import annotations

import json
from pathlib import Path

from qnetstack.stack.schemas import generate

SCHEMAS = Path(__file__).resolve().parent.parent / "specs" / "schemas"


def test_committed_schemas_match_the_models():
    expected = generate()
    committed = {str(p.relative_to(SCHEMAS)): p.read_text(encoding="utf-8") for p in SCHEMAS.rglob("*.json")}
    assert sorted(committed) == sorted(expected), "run: qnetstack schema --out specs/schemas"
    stale = [name for name, text in expected.items() if committed[name] != text]
    assert not stale, f"stale schemas {stale}; run: qnetstack schema --out specs/schemas"


def test_every_message_schema_has_a_kind_literal():
    for name, text in generate().items():
        schema = json.loads(text)
        kind = schema.get("properties", {}).get("kind")
        if kind is not None:
            assert "const" in kind or "enum" in kind, name


def test_link_create_schema_states_units_and_ranges():
    schema = json.loads(generate()["link/LinkCreate.json"])
    props = schema["properties"]
    assert props["min_fidelity"]["maximum"] == 1.0 and props["min_fidelity"]["minimum"] == 0.0
    assert "max_time_ns" in props and props["number"]["minimum"] == 1
