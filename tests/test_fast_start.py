"""The command line starts without QuTiP, and prints no third-party warning.

Importing QuTiP takes about a second, so it is imported only where it is used
(``qnetstack.physical.lazy_qutip``): the attempt-by-attempt optics of the
``qutip-single-click`` backend and the reads that hand a user a ``Qobj``. These
tests run fresh interpreters, since a test process has long imported QuTiP."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Two nodes over 10 km on the model-heralding backend: the fast path of
# fast-forward runs and the benchmarks. A few pairs keep it to milliseconds.
MODEL_HERALDING_SCENARIO = """\
name: model-heralding-pairs
seed: 3
nodes:
  - name: alice
  - name: bob
links:
  - a: alice
    b: bob
    length_km: 10
    bright_state_population: 0.1
implementations:
  physical: model-heralding
applications:
  - node: alice
    request: {kind: pairs, remote_node: bob, number: 3}
"""

# Imports the stack's entry points, then runs each command given as a JSON
# argument list in this one interpreter and says after which step QuTiP was
# first loaded, if it was.
_PROBE = textwrap.dedent(
    """
    import contextlib, io, json, sys

    def qutip_loaded(step):
        if "qutip" in sys.modules:
            print(json.dumps({"qutip_loaded_by": step}))
            sys.exit(0)

    import qnetstack.stack, qnetstack.stack.cli, qnetstack.stack.scenario, qnetstack.stack.registry
    import qnetstack.physical.service, qnetstack.link.service, qnetstack.network.service, qnetstack.application.service
    qutip_loaded("import of the stack, the scenario model, the registry and the service modules")
    from qnetstack.stack.cli import main
    outputs = []
    for args in json.loads(sys.argv[1]):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            try:
                code = main(args)
            except SystemExit as stop:  # --help ends in argparse's exit
                code = stop.code
        outputs.append({"args": args, "code": code, "stdout": out.getvalue()})
        qutip_loaded("qnetstack " + " ".join(args))
    print(json.dumps({"qutip_loaded_by": None, "outputs": outputs}))
    """
)


def test_qutip_stays_out_of_the_commands_that_do_not_need_it(tmp_path):
    """``--help``, ``schema``, a link conformance clause (the link harness runs
    on fake devices) and a model-heralding run never load QuTiP."""
    scenario = tmp_path / "pairs.yaml"
    scenario.write_text(MODEL_HERALDING_SCENARIO)
    commands = [
        ["--help"],
        ["schema", "--out", str(tmp_path / "schemas")],
        ["conform", "link", "--clause", "LINK-OK-2"],
        ["run", str(scenario), "--json"],
    ]
    done = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(commands)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["qutip_loaded_by"] is None
    codes = {" ".join(o["args"][:2]): o["code"] for o in report["outputs"]}
    assert set(codes.values()) == {0}, codes
    # the run did the work (a run that stopped early would prove nothing)
    run = json.loads(report["outputs"][-1]["stdout"])
    assert run["pairs"]["count"] == 3 and run["applications"][0]["outcome"] == "done"
    assert (tmp_path / "schemas").is_dir()


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """The console script's own start (``qnetstack.stack.cli:main``), in a fresh
    interpreter with Python's default warning filters (no ``-W``)."""
    code = "import sys; from qnetstack.stack.cli import main; sys.exit(main())"
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_help_and_bad_input_print_no_warning(tmp_path):
    """``qnetstack --help`` writes nothing to stderr; bad input is exactly one
    line naming the problem, exit code 2."""
    shown = _cli(["--help"], tmp_path)
    assert shown.returncode == 0 and "usage: qnetstack" in shown.stdout
    assert shown.stderr == ""
    bad = _cli(["run", "no-such-scenario.yaml"], tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.splitlines() == [bad.stderr.strip()] and "no-such-scenario.yaml" in bad.stderr


@pytest.mark.slow
def test_a_run_that_loads_qutip_prints_no_warning(tmp_path):
    """Where QuTiP is needed (the qutip-single-click backend), it is imported with
    its import-time warnings silenced: stderr stays empty, from the repository's
    root too (where setuptools, which QuTiP imports, warns about the editable
    install when the root is on sys.path)."""
    scenario = tmp_path / "pairs.yaml"
    scenario.write_text(MODEL_HERALDING_SCENARIO.replace("physical: model-heralding", "physical: qutip-single-click"))
    for cwd in (tmp_path, ROOT):
        done = _cli(["run", str(scenario), "--json"], cwd)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["pairs"]["count"] == 3
        assert done.stderr == ""
