"""The laboratory: measurements that reproduce published results with the library's models.

``capacity.py`` (the capacity laboratory: loads, the neuron sweep, scaling fits), ``theory.py`` (signal-to-noise
and Amit-Gutfreund-Sompolinsky curves), ``random_starts.py`` (KH16's appendix experiment), ``overlap.py`` (the
order parameter of recall), ``demo_models.py`` (the demo's six memories), ``demo.py`` (the demo's measurements
and table), ``capacity_gap.py`` (exact recall against the number of stored patterns, any demo model).
"""

from assocmem.laboratory.overlap import overlap

__all__ = ["overlap"]
