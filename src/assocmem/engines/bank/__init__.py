"""Memory banks: a store of patterns (and values) with ids, retrieved by Model B's update (docs/bank.md).

- :class:`MemoryBank` (``memory_bank.py``): add, remove by id, retrieve (the loop of :func:`assocmem.retrieve`),
  energy, save and load; it computes what ``retrieve`` computes over its rows (tests/test_bank.py);
- the backends behind :class:`Backend` (``backend.py``): :class:`LocalBackend` (``local.py``, the exact chunked
  engine), :class:`CandidateBackend` (``candidates.py``: FAISS candidates scored exactly, with the
  :class:`Certificate` of ``certificate.py`` on the weight of the rest, over the cluster partition of
  ``partition.py``), and the sharded backend on ``torch.distributed``;
- the rows in their storage type (``rows.py``: float32, float16, int8) and the files (``storage.py``: safetensors
  shards, a JSON manifest with checksums, :func:`read_rows`).

The public names are the bank, its result, the contract a backend fulfils and the reader of a saved bank's rows;
the backends themselves are reached through a bank (``bank.backend``) or their modules.
"""

from assocmem.engines.bank.backend import Backend
from assocmem.engines.bank.certificate import Certificate
from assocmem.engines.bank.memory_bank import BankRetrieval, MemoryBank
from assocmem.engines.bank.storage import read_rows

__all__ = ["Backend", "BankRetrieval", "Certificate", "MemoryBank", "read_rows"]
