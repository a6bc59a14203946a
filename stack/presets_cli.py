"""``qnetstack presets``: the platform presets a scenario node may name.

One line per preset of :data:`qnetstack.physical.components.presets.PRESETS`
(name, what it is, its scheme, the wavelength in the fibre, the photon
efficiency, the memory's T2 and the detector's efficiency), each followed by
the experiments its figures come from; ``--json`` prints the same as one JSON
object for programs.
"""

from __future__ import annotations

import json
from typing import Any

from qnetstack.physical.components.presets import PRESETS, PlatformPreset

__all__ = ["preset_rows", "render_presets"]


def _row(preset: PlatformPreset) -> dict[str, Any]:
    memory = preset.memory_params()
    return {
        "name": preset.name,
        "platform": preset.description,
        "scheme": preset.scheme,
        "wavelength_nm": preset.wavelength_nm,
        "photon_efficiency": preset.photon_efficiency(),
        "conversion_efficiency": None if preset.conversion is None else preset.conversion.efficiency,
        "memory_qubits": memory.num_qubits,
        "t2_ns": memory.t2_ns,
        "detector_efficiency": preset.detector.efficiency,
        "detector_dark_count_rate_hz": preset.detector.dark_count_rate_hz,
        "references": list(preset.references),
    }


def preset_rows() -> list[dict[str, Any]]:
    """Every preset's key figures, in the order of ``PRESETS``."""
    return [_row(preset) for preset in PRESETS.values()]


def render_presets(as_json: bool = False) -> str:
    """The presets as text for a terminal, or as JSON (``{"presets": [...]}``)."""
    rows = preset_rows()
    if as_json:
        return json.dumps({"presets": rows}, indent=2, ensure_ascii=False)
    lines = []
    for row in rows:
        t2 = "no dephasing" if row["t2_ns"] is None else f"T2 {row['t2_ns'] / 1e9:.3g} s"
        converted = "" if row["conversion_efficiency"] is None else f" (converted, η_c {row['conversion_efficiency']:g})"
        lines.append(f"{row['name']}: {row['platform']}")
        lines.append(
            f"  {row['scheme']}, {row['wavelength_nm']:g} nm in the fibre{converted}, photon efficiency {row['photon_efficiency']:.3g}, "
            f"{row['memory_qubits']} memory qubit(s), {t2}, detector efficiency {row['detector_efficiency']:g}"
        )
        lines.extend(f"  - {reference}" for reference in row["references"])
    lines.append("Use one in a scenario: nodes: [{name: a, hardware: {preset: NAME}}] (fields given in hardware override it).")
    return "\n".join(lines)
