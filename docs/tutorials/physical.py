# %% [markdown]
# # The physical layer: a heralded link's rate and fidelity against distance
#
# A heralded link makes entanglement between two memories by attempts: each
# node emits a photon entangled with its memory, the photons meet at a
# station halfway, and a detector click there announces (heralds) a pair.
# This tutorial takes the single-click scheme (Humphreys et al., Nature 558,
# 268 (2018)) and asks its model two questions for a range of fibre lengths:
# how often does an attempt succeed, and how good is the pair it makes?
#
# The link's parameters are pydantic models from `qnetstack.physical.params`;
# fibre loss defaults to 0.2 dB/km (ITU-T G.652 fibre at 1550 nm).

# %%
import numpy as np

from qnetstack.physical.params import NodeHardware, SingleClickLinkParams
from qnetstack.physical.schemes.model import sample_success
from qnetstack.physical.schemes.single_click import SingleClickModel

hardware = NodeHardware()  # the default node: emission efficiency, memory
link = SingleClickLinkParams(length_km=10.0, bright_state_population=0.1)
model = SingleClickModel(link, hardware, hardware)
print(f"10 km, alpha = 0.1: success probability per attempt {model.success_probability():.3e}")
for branch in model.branches():
    print(f"  herald {branch.bell_state.value}: probability {branch.probability:.3e}, fidelity {branch.fidelity:.4f}")

# %% [markdown]
# Both herald outcomes (a click in one detector or the other) give the same
# fidelity, to the Bell state Ψ+ or Ψ− that the click announces.
#
# Each attempt takes a round trip between a node and the station, so the
# pair rate is the success probability over that period. For small αη the
# closed forms are p ≈ 2αη and F ≈ 1 − α (η: the total photon efficiency from
# emission to detection; the model's docstring derives the exact forms).

# %%
SPEED_IN_FIBRE_KM_PER_S = 299_792.458 / link.fibre.refractive_index

print(f"{'km':>5} {'p per attempt':>14} {'period (us)':>12} {'rate (1/s)':>11} {'fidelity':>9}")
rows = []
for km in (1, 5, 10, 25, 50, 100):
    model = SingleClickModel(link.replace(length_km=float(km)), hardware, hardware)
    p = model.success_probability()
    period_s = 2 * (km / 2) / SPEED_IN_FIBRE_KM_PER_S  # there and back over half the link
    fidelity = model.branches()[0].fidelity
    rows.append((km, p / period_s, fidelity))
    print(f"{km:>5} {p:>14.3e} {period_s * 1e6:>12.2f} {p / period_s:>11.1f} {fidelity:>9.4f}")

# %% [markdown]
# The rate falls fast with distance: the success probability follows the
# photon's transmittance over half the link (at 0.2 dB/km, half of it is lost
# every 30 km of link), and each attempt waits longer for its herald. The
# fidelity barely moves: with few dark counts it is set by α, the chance that
# both nodes emitted.
#
# The trade-off is α itself: a brighter emission heralds more often and makes
# worse pairs.

# %%
for alpha in (0.05, 0.1, 0.2, 0.3):
    model = SingleClickModel(link.replace(bright_state_population=alpha), hardware, hardware)
    print(f"alpha {alpha:.2f}: p = {model.success_probability():.3e}, F = {model.branches()[0].fidelity:.4f}")

# %% [markdown]
# A running link does not compute p: it draws attempts. `sample_success`
# draws the number of attempts up to the first success (geometric with the
# model's p) and which herald it was. Over many draws, the mean number of
# attempts must agree with 1/p; the check below allows 5 standard errors of
# that mean (a correct model fails it with probability below 10⁻⁶).

# %%
rng = np.random.default_rng(7)
model = SingleClickModel(link.replace(length_km=25.0), hardware, hardware)
p = model.success_probability()
draws = np.array([sample_success(model, rng)[0] for _ in range(4000)])
standard_error = draws.std(ddof=1) / np.sqrt(len(draws))
print(f"25 km: mean attempts {draws.mean():.1f} ± {standard_error:.1f}, 1/p = {1 / p:.1f}")

assert abs(draws.mean() - 1 / p) < 5 * standard_error
assert rows[0][1] > rows[-1][1] * 100  # pairs come far faster over 1 km than over 100 km
assert all(abs(f - rows[0][2]) < 0.05 for _, _, f in rows)  # fidelity is nearly flat in distance
