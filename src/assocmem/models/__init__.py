"""Named models: presets of the general network (REFERENCE.md section 2), the binary networks (section 3) and
recall measures."""

from assocmem.models.binary import BinaryDAM, ClassicalHopfield, Recall
from assocmem.models.classifier import DAMClassifier
from assocmem.models.effective import continuous_hopfield, model_a, model_b, model_c
from assocmem.models.interaction import KINDS, interaction
from assocmem.models.microscopic import FEATURE, HIDDEN, SYNAPSE, microscopic
from assocmem.models.overlap import overlap
from assocmem.models.retrieval import Retrieval, retrieve

__all__ = [
    "FEATURE",
    "HIDDEN",
    "KINDS",
    "SYNAPSE",
    "BinaryDAM",
    "ClassicalHopfield",
    "DAMClassifier",
    "Recall",
    "Retrieval",
    "continuous_hopfield",
    "interaction",
    "microscopic",
    "model_a",
    "model_b",
    "model_c",
    "overlap",
    "retrieve",
]
