"""docs/state-machines.md is rendered from the transition tables in the code."""

from __future__ import annotations

from pathlib import Path

from qnetstack.stack.cli import main
from qnetstack.stack.diagrams import LAYERS, collect, render

DOC = Path(__file__).resolve().parent.parent / "docs" / "state-machines.md"


def test_committed_state_diagrams_match_the_code():
    assert DOC.read_text(encoding="utf-8") == render(), "stale: run qnetstack diagrams"


def test_every_layers_sessions_are_found_and_drawn_with_every_transition():
    from qnetstack.application.apps import MACHINES as APP_MACHINES
    from qnetstack.link.request import MACHINES as LINK_MACHINES
    from qnetstack.network.circuit import MACHINES as CIRCUIT_MACHINES
    from qnetstack.network.pairs import MACHINES as PAIR_MACHINES

    found = {layer: collect(layer) for layer in LAYERS}
    for layer, known in (("link", LINK_MACHINES), ("network", CIRCUIT_MACHINES + PAIR_MACHINES), ("application", APP_MACHINES)):
        assert known and all(any(m is k for m in found[layer]) for k in known), layer
    page = render()
    for layer in LAYERS:
        for machine in found[layer]:
            assert f"### `{machine.name}`" in page
            for (state, event), target in machine.transitions.items():
                assert f"    {state.value} --> {target.value}: {event.value}" in page


def test_cli_writes_the_page(tmp_path):
    out = tmp_path / "machines.md"
    assert main(["diagrams", "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == render()


def test_cli_says_in_one_line_when_it_cannot_write(tmp_path, capsys):
    assert main(["diagrams", "--out", str(tmp_path / "no-such-folder" / "machines.md")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("qnetstack: error: --out: ") and "no-such-folder does not exist" in err[0]
    assert list(tmp_path.iterdir()) == []  # checked before rendering: nothing written
