"""Keep freed memory in the process so that large temporaries are not re-mapped at every dynamics step.

With glibc's default settings, a freed block of a few MB is returned to the operating system and the next
step's tensor of the same size is mapped again, page by page: measured here, a dynamics step of a 784 x 16,384
network takes 20,000 page faults and 15-30% more time than its matrix products need. :func:`retain_freed_memory`
raises glibc's mmap and trim thresholds (``mallopt``) so freed blocks are reused instead. It is process-wide,
so assocmem never calls it on import: the command-line tool and the benchmarks call it, and a program that runs
long relaxations may call it once at start-up. On other platforms or C libraries it does nothing.
"""

from __future__ import annotations

import ctypes
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: glibc's upper limit for M_MMAP_THRESHOLD on 64-bit systems (blocks above it are always mapped directly).
_MMAP_THRESHOLD_MAX = 32 * 1024 * 1024


def retain_freed_memory(trim_threshold: int = 512 * 1024 * 1024) -> bool:
    """Serve blocks up to 32 MB from the heap and keep up to ``trim_threshold`` bytes of freed memory.

    Returns True when the setting was applied (Linux with glibc), False where it is not available.
    """
    if not isinstance(trim_threshold, int) or trim_threshold < 0:
        raise ValueError(
            f"retain_freed_memory: trim_threshold must be a non-negative int, got {trim_threshold!r}"
        )
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    trim = min(trim_threshold, 2**31 - 1)
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)) and bool(mallopt(_M_TRIM_THRESHOLD, trim))
