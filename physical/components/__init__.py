"""Component models of the physical layer: what the hardware is, one device at a time.

Photon sources (:mod:`.sources`), channels (:mod:`.channels`), detectors
(:mod:`.detectors`), quantum memories (:mod:`.memories`) and the idle channel
of a memory qubit (:mod:`.memory_noise`), platform presets (:mod:`.presets`)
and sparse Fock states for linear optics (:mod:`.fock`). Each model derives
its figures from published physics and converts to the coarse parameters the
running stack takes (:mod:`qnetstack.physical.params`).

May import: :mod:`qnetstack.physical.service`, :mod:`qnetstack.physical.params`
and each other. Never the schemes, engines or backends (the import-linter
contract "Physical tiers" in ``pyproject.toml``): components are the bottom
tier, the others are built on them.
"""
