"""Physical backends: the entities a running stack gets for its nodes and stations.

:mod:`.device` is the node device both backends share (memory slots over the
world); :mod:`.midpoint` the rest they share (the node's end of a heralded
link, the midpoint station's bookkeeping, the entity factory).
:mod:`.qutip_backend` (registry name ``qutip-single-click``) interferes the
photons of single-click attempts in the world, attempt by attempt;
:mod:`.heralding_backend` (``model-heralding``) draws each outcome from the
link's scheme model, with fast-forward over runs of attempts.

May import every other tier and :mod:`qnetstack.physical.service` /
:mod:`qnetstack.physical.params`; nothing in the physical layer imports a
backend except the stack's registry (by path) and the tests.
"""
