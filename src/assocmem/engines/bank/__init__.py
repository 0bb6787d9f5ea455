"""Memory banks: a store of patterns (and values) behind one backend interface (docs/bank.md).

- :class:`~assocmem.engines.bank.backend.Backend`: the contract, one association over every row with its
  log-partition;
- :func:`~assocmem.engines.bank.merge.merge`: the exact merge of the associations of a memory's parts
  (docs/reference.md §8);
- :class:`~assocmem.engines.bank.sharded.ShardedBackend`: the rows spread over the ranks of a
  ``torch.distributed`` process group, merged by collectives; :func:`~assocmem.engines.bank.launch.launch`
  starts a few ranks on this machine (tests, benchmarks).
"""

from assocmem.engines.bank.backend import Backend
from assocmem.engines.bank.launch import LaunchError, launch
from assocmem.engines.bank.merge import merge
from assocmem.engines.bank.sharded import ShardedBackend, ShardError, shard_bounds

__all__ = ["Backend", "LaunchError", "ShardError", "ShardedBackend", "launch", "merge", "shard_bounds"]
