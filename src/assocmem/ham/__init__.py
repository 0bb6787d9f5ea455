"""Hierarchical associative memories that learn: recipes trained through the dynamics (docs/ham-recipes-recon.md)."""

from assocmem.ham import patches, reconstruction

__all__ = ["patches", "reconstruction"]
