"""Memory banks: a store of patterns (and values) with ids, retrieved by Model B's update (docs/bank.md).

- :class:`MemoryBank` (``memory_bank.py``): add, remove by id, retrieve (the loop of :func:`assocmem.retrieve`),
  energy, save and load; it computes what ``retrieve`` computes over its rows (tests/test_bank.py);
- the backends behind :class:`Backend` (``backend.py``, one association over every row with its log-partition):
  :class:`LocalBackend` (``local.py``, the exact chunked engine), :class:`CandidateBackend` (``candidates.py``:
  FAISS candidates scored exactly, with the :class:`Certificate` of ``certificate.py`` on the weight of the rest,
  over the cluster partition of ``partition.py``), and :class:`ShardedBackend` (``sharded.py``: the rows spread
  over the ranks of a ``torch.distributed`` process group, merged by collectives);
- :func:`merge` (``merge.py``): the exact merge of the associations of a memory's parts (docs/reference.md §8);
  :func:`launch` (``launch.py``) starts a few ranks on this machine (tests, benchmarks);
- the rows in their storage type (``rows.py``: float32, float16, int8) and the files (``storage.py``: safetensors
  shards, a JSON manifest with checksums, :func:`read_rows`).
"""

from assocmem.engines.bank.backend import Backend
from assocmem.engines.bank.certificate import Certificate
from assocmem.engines.bank.launch import LaunchError, launch
from assocmem.engines.bank.memory_bank import BankRetrieval, MemoryBank
from assocmem.engines.bank.merge import merge
from assocmem.engines.bank.sharded import ShardedBackend, ShardError, shard_bounds
from assocmem.engines.bank.storage import read_rows

__all__ = [
    "Backend",
    "BankRetrieval",
    "Certificate",
    "LaunchError",
    "MemoryBank",
    "ShardError",
    "ShardedBackend",
    "launch",
    "merge",
    "read_rows",
    "shard_bounds",
]
