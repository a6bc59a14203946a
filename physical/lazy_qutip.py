"""QuTiP, imported on first use.

The engines hold states as numpy arrays, so the model-heralding backend and
everything that assembles or checks a network run without QuTiP. QuTiP is
needed only where states meet its operators (the attempt-by-attempt optics of
the ``qutip-single-click`` backend) or are handed to a user as ``Qobj``. Those
places call :func:`qutip` here instead of importing it at module level:
importing QuTiP costs about a second, more than the rest of the package.

QuTiP warns at import when matplotlib is missing, and the ``setuptools`` it
imports can warn about our editable install; neither concerns a run (nothing
here plots or builds), so the import is done with just those two warnings
silenced, and the caller's warning filters are left as they were.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING, TypeGuard

import numpy as np

if TYPE_CHECKING:
    from qutip import Qobj

__all__ = ["qutip", "is_qobj", "as_qobj"]


def qutip() -> ModuleType:
    """The ``qutip`` module, imported now if it was not yet."""
    module = sys.modules.get("qutip")
    if module is not None:
        return module
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="matplotlib not found", category=UserWarning)
        warnings.filterwarnings("ignore", message="Module qnetstack was already imported", category=UserWarning)
        return importlib.import_module("qutip")


def is_qobj(value: object) -> TypeGuard[Qobj]:
    """Whether ``value`` is a QuTiP ``Qobj``, without importing QuTiP: a ``Qobj``
    can only exist once QuTiP is imported."""
    module = sys.modules.get("qutip")
    return module is not None and isinstance(value, module.Qobj)


def as_qobj(matrix: np.ndarray, dims: Sequence[Sequence[int]]) -> Qobj:
    """``matrix`` (a copy of it) as a dense ``Qobj`` with ``dims``, e.g. ``[[2, 2], [2, 2]]``."""
    return qutip().Qobj(np.array(matrix, dtype=complex), dims=[list(d) for d in dims]).to("dense")
