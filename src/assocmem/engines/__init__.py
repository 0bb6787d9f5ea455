"""Fast paths: each computes what a preset of the general network computes, faster, and names that preset.

- :mod:`assocmem.engines.retrieval`: Model B's update ``x <- xi^T softmax(beta xi x)`` on large memory banks,
  streamed in cache-sized chunks with an online softmax. It equals :func:`assocmem.relax` of the reduced
  :func:`assocmem.models.model_b` with Euler steps ``dt = tau_f``.
- :mod:`assocmem.engines.bank`: :class:`MemoryBank`, a store of patterns (and values) with ids on a local, a
  candidate (FAISS, with a certificate) or a sharded backend; it computes what ``retrieve`` computes.
- :mod:`assocmem.engines.binary`: asynchronous and synchronous spin updates of the binary Dense Associative Memory
  and the classical Hopfield network. Each move is the sign of an energy difference of the reduced
  :func:`assocmem.models.model_a` with ``L_v = sum |v|``.

``tests/test_engines.py`` checks every engine against its preset on small cases.
"""

from assocmem.engines.bank import BankRetrieval, MemoryBank
from assocmem.engines.binary import BinaryDAM, ClassicalHopfield, Recall
from assocmem.engines.retrieval import Retrieval, retrieve

__all__ = ["BankRetrieval", "BinaryDAM", "ClassicalHopfield", "MemoryBank", "Recall", "Retrieval", "retrieve"]
