"""qnetstack's assembler, kernel, scenario files and command line.

The usual entry points::

    from qnetstack.stack import assemble, load_scenario
    result = assemble(load_scenario("examples/teleport-chain.yaml")).run()
    print(result.to_table())
"""

from qnetstack.stack.assembler import AssemblyError, Simulation, assemble, scenario_from_graph
from qnetstack.stack.scenario import Scenario, ScenarioError, load_scenario, parse_scenario

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
