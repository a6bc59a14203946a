"""JSON Schemas of every service message and of the scenario file.

Generated from the pydantic models, never written by hand:
``qnetstack schema --out specs/schemas``. A test regenerates them and fails
when the committed files differ from the models.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from qnetstack.application import service as application_service
from qnetstack.link import service as link_service
from qnetstack.network import service as network_service
from qnetstack.physical import service as physical_service
from qnetstack.stack.scenario import Scenario

__all__ = ["generate", "write"]

SERVICE_MODULES = {
    "physical": physical_service,
    "link": link_service,
    "network": network_service,
    "application": application_service,
}


def generate() -> dict[str, str]:
    """Relative file path -> schema text, for every message model and the scenario."""
    files: dict[str, str] = {"scenario.json": _dump(Scenario)}
    for layer, module in SERVICE_MODULES.items():
        for name in module.__all__:
            obj = getattr(module, name)
            if isinstance(obj, type) and issubclass(obj, BaseModel) and obj.__module__ == module.__name__:
                files[f"{layer}/{name}.json"] = _dump(obj)
    return files


def write(out: Path) -> list[Path]:
    written = []
    for relative, text in sorted(generate().items()):
        path = out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def _dump(model: type[BaseModel]) -> str:
    return json.dumps(model.model_json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
