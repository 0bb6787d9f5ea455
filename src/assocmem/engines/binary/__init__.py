"""The binary spin engine: the Dense Associative Memory (KH16) and the classical Hopfield network.

``dam.py`` (the models and their recall), ``tables.py`` (exact or scaled lookup tables of the update and the
energy), ``sweeps.py`` (the sweeps in PyTorch, on any device) and ``numba_loop.py`` (the fused spin loop on the
CPU). Every move equals the sign of the energy difference of the reduced model A (``L_v = sum |v|``,
``L_h = sum_mu F(h_mu)``).
"""

from assocmem.engines.binary.dam import BinaryDAM, ClassicalHopfield, Recall

__all__ = ["BinaryDAM", "ClassicalHopfield", "Recall"]
