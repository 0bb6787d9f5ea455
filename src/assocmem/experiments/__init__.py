"""Experiments that reproduce the published results (REFERENCE.md section 5) with the library's models."""
