"""State engines: where quantum states are held and evolved.

:mod:`.world` is the reference engine every backend runs on — one numpy
density-matrix store (:class:`~qnetstack.physical.engines.world.QuantumWorld`)
for all qubits of a network. :mod:`.bell_diagonal` (four weights per pair,
exact under Pauli noise) and :mod:`.pair_state` (one pair, Bell-diagonal while
it can be) are faster engines for pairs, off the run path (see the
:mod:`.bell_diagonal` docstring for why); :mod:`.distillation` holds the
BBPSSW and DEJMPS recurrence maps on Bell-diagonal pairs in closed form.

May import: the components (memory noise), :mod:`qnetstack.physical.service`
and :mod:`qnetstack.physical.params`. Never the schemes or the backends
(contract "Physical tiers" in ``pyproject.toml``).
"""
