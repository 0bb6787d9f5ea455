"""Immune repertoire classification in the DeepRC style: massive multiple-instance learning.

A repertoire is a bag of 10^3 to 10^6 CDR3 amino-acid sequences; its label (disease status) is carried by a tiny
fraction of them. ``alphabet.py`` (the amino-acid codes), ``bag.py`` (:class:`Repertoire`), ``motif.py``
(:class:`Motif`), ``metrics.py`` (ROC curve and area).
"""

from assocmem.repertoire.alphabet import AMINO_ACIDS, PAD, decode, encode
from assocmem.repertoire.bag import Repertoire
from assocmem.repertoire.metrics import roc_auc, roc_curve
from assocmem.repertoire.motif import Motif

__all__ = ["AMINO_ACIDS", "PAD", "Motif", "Repertoire", "decode", "encode", "roc_auc", "roc_curve"]
