"""qnetstack's assembler, kernel, scenario files and command line.

The usual entry points::

    from qnetstack.stack import assemble, load_scenario
    result = assemble(load_scenario("examples/teleport-chain.yaml")).run()
    print(result.to_table())
"""

import warnings

# QuTiP warns at import when matplotlib is missing; nothing here plots. The filter
# must be set before the first import of QuTiP, which the assembler below triggers
# (the command line's own filter came too late for the console script).
warnings.filterwarnings("ignore", message="matplotlib not found")

from qnetstack.stack.assembler import AssemblyError, Simulation, assemble, scenario_from_graph  # noqa: E402
from qnetstack.stack.scenario import Scenario, ScenarioError, load_scenario, parse_scenario  # noqa: E402

__all__ = [
    "AssemblyError",
    "Scenario",
    "ScenarioError",
    "Simulation",
    "assemble",
    "load_scenario",
    "parse_scenario",
    "scenario_from_graph",
]
