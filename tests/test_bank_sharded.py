"""The sharded bank on 2, 3 and 4 processes started on this machine (gloo over the loopback interface).

One start per number of ranks runs every check (tests/sharded_checks.py): the answers of one and three steps,
with values and masks, and the gradients (queries, rows, values, beta, and a layer trained under
DistributedDataParallel, and nn.HopfieldLayer with its lookup rows sharded) equal the single-process engine's
on the whole bank in float64; a bank saved on every rank reloads on fewer and in one process; with three ranks, a
rank that stalls past the timeout, then one that dies, make every other rank raise ShardError in time.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assocmem.engines.bank import launch
from tests import sharded_checks

#: float64 answers and gradients of O(1) on 11 rows: the sharded sums differ from one pass by rounding only
#: (measured up to 3e-14); a wrong merge or a missing gradient term is off by O(0.1).
TOL = 1e-12

#: The bank's timeout in the failure checks (seconds); a stall lasts it plus 1.5 s.
TIMEOUT = 1.0


def saved_bank(folder: Path) -> str | None:
    """The checks' bank saved by one process (None until the bank's storage is there: the reload and the
    MemoryBank on a sharded backend are checked once it is)."""
    try:
        from assocmem.engines.bank import MemoryBank
    except ImportError:
        return None
    xi, v, _, _ = sharded_checks.bank()
    return str(MemoryBank(xi, v, storage="float64").save(folder / "bank"))


@pytest.mark.parametrize("world", [2, 3, 4])
def test_sharded_bank_equals_one_process(world, tmp_path):
    saved = saved_bank(tmp_path)
    back = launch(
        sharded_checks.checks, world, (str(tmp_path), TIMEOUT, saved), timeout=240.0, missing_ok=True
    )
    for rank in range(world):
        found = json.loads((tmp_path / f"{rank}.json").read_text())
        assert found.pop("errors") == 2, (
            f"rank {rank} accepted other queries or a query hidden from every row"
        )
        # the reload checks (5), the sharded save (2, and the reload on world - 1 ranks on all but the last)
        # and the sharded nn.HopfieldLayer under DDP (its output and the gradients of its 13 parameters)
        assert len(found) == 16 + 14 + (5 + 2 + (rank < world - 1)) * (saved is not None)
        wrong = {k: v for k, v in found.items() if not v <= TOL}
        assert not wrong, f"rank {rank} of {world} differs from one process by more than {TOL}: {wrong}"
    if world < 3:
        return
    *survivors, killed = back
    assert killed is None, "the killed rank answered"
    stalled = json.loads((tmp_path / "stalled.json").read_text())["stall"]
    assert "No partial answer" in stalled, f"the stalled rank itself: {stalled}"
    for rank, seen in enumerate(survivors):
        for case in ("stall", "kill"):
            message = seen[case]
            assert message != "answered", f"rank {rank} returned an answer although a rank {case}ed"
            assert f"rank {rank} of {world}" in message and "No partial answer" in message, message
        # the first ranks to time out close their connections: the others may see them closed first
        assert "timeout (1 s)" in seen["stall"] and (
            "Timed out" in seen["stall"] or "closed" in seen["stall"]
        )
        assert TIMEOUT * 0.8 < seen["stall seconds"] < TIMEOUT + 10, seen["stall seconds"]
        assert seen["kill seconds"] < TIMEOUT + 10, seen["kill seconds"]


def test_sharded_hopfield_layer_refuses_bad_options():
    """What a sharded HopfieldLayer refuses before any collective (its training is checked in the runs above)."""
    import torch

    from assocmem.nn import HopfieldLayer
    from assocmem.nn.sharded_lookup import ignore_in_ddp

    with pytest.raises(TypeError, match="group must be a torch"):
        HopfieldLayer(8, quantity=4, group="all")
    with pytest.raises(TypeError, match="layer must be a torch"):
        ignore_in_ddp(torch.zeros(3))
