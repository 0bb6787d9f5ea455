"""A bank's rows in their storage type: float32 or float64 as given, float16, or int8 with one scale per row.

Every score the bank reports is computed in the queries' dtype from the stored rows (docs/bank.md, "Storage"):
the rows the bank holds *are* the stored ones (float16 or int8 rounds them once, when they are added), and the
exact rescoring and the exact pass read them back, block by block, converted to the queries' dtype. int8 keeps
``xi_mu = s_mu * n_mu`` with ``n_mu`` in ``[-127, 127]`` and ``s_mu = max_i |xi_mu,i| / 127`` (float32): 68
bytes a row at ``d = 64``, against 128 for float16 and 256 for float32.
"""

from __future__ import annotations

import torch
from torch import Tensor

#: The storage types, by name.
STORAGE = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16, "int8": torch.int8}


class Rows:
    """``data (K, d)`` in its storage type, with ``scale (K,)`` (float32) for int8; ``size``, ``dim``."""

    def __init__(self, data: Tensor, scale: Tensor | None = None) -> None:
        self.data, self.scale = data, scale

    @classmethod
    def store(cls, t: Tensor, storage: str | None) -> Rows:
        """``t (K, d)`` in the storage type ``storage`` (``None``: as it is, no copy: gradients flow to ``t``)."""
        if storage is None or STORAGE[storage] == t.dtype:
            return cls(t)
        if storage == "int8":
            t = t.detach().float()
            scale = t.abs().amax(1) / 127.0
            scale = torch.where(scale > 0, scale, torch.ones_like(scale))
            return cls(torch.round(t / scale[:, None]).clamp_(-127, 127).to(torch.int8), scale)
        return cls(t.detach().to(STORAGE[storage]))

    @property
    def size(self) -> int:
        return self.data.shape[0]

    @property
    def dim(self) -> int:
        return self.data.shape[1]

    @property
    def storage(self) -> str:
        return next(k for k, v in STORAGE.items() if v == self.data.dtype)

    @property
    def exact(self) -> bool:
        """Whether the rows are held as floats of a compute type (no conversion before a product)."""
        return self.data.dtype in (torch.float32, torch.float64)

    @property
    def nbytes(self) -> int:
        return self.data.nbytes + (0 if self.scale is None else self.scale.nbytes)

    def block(self, lo: int, hi: int, dtype: torch.dtype) -> Tensor:
        """Rows ``lo`` to ``hi`` in ``dtype`` (a view when nothing needs converting)."""
        return self._convert(self.data[lo:hi], None if self.scale is None else self.scale[lo:hi], dtype)

    def take(self, index: Tensor, dtype: torch.dtype) -> Tensor:
        """The rows ``index`` (any shape) in ``dtype``: ``(*index.shape, d)``."""
        return self._convert(self.data[index], None if self.scale is None else self.scale[index], dtype)

    @staticmethod
    def _convert(data: Tensor, scale: Tensor | None, dtype: torch.dtype) -> Tensor:
        if scale is not None:
            return data.to(dtype) * scale.to(dtype).unsqueeze(-1)
        return data if data.dtype == dtype else data.to(dtype)

    def norms(self, dtype: torch.dtype = torch.float64, block: int = 1 << 20) -> Tensor:
        """``|xi_mu|`` of every row, ``(K,)``, computed block by block in ``dtype``."""
        return torch.cat(
            [
                torch.linalg.vector_norm(self.block(lo, lo + block, dtype), dim=1)
                for lo in range(0, self.size, block)
            ]
            or [torch.zeros(0, dtype=dtype)]
        )

    def joined(self, other: Rows) -> Rows:
        """These rows followed by ``other``'s (same storage)."""
        scale = None if self.scale is None else torch.cat([self.scale, other.scale])
        return Rows(torch.cat([self.data, other.data]), scale)

    def select(self, keep: Tensor) -> Rows:
        """The rows where ``keep (K,)`` (bool) is True, in order."""
        return Rows(self.data[keep], None if self.scale is None else self.scale[keep])
