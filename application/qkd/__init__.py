"""QKD post-processing as separate, typed stages (pure functions, no simulation).

The estimation half: ``sifting`` (BB84/BBM92, decoy BB84, E91 with its CHSH
test), ``estimation`` (QBER with a confidence bound and the abort decision,
decoy-state bounds on the single-photon yield and error), ``key_length``
(asymptotic and finite-key lengths, the repeaterless bound). The records the
stages pass are in ``types``. An application calls them in that order:
sift, estimate, then ask for the key length the estimates allow.

The key-processing half: ``reconcile`` (the reconciler interface and its
registry by name) with ``cascade`` and ``ldpc_code``, ``verify`` (equal keys
by a universal hash), ``privacy`` (Toeplitz hashing by FFT) and ``auth``
(Wegman–Carter tags paid from a pre-shared key pool). See docs/qkd.md and
docs/qkd-postprocessing.md.
"""
