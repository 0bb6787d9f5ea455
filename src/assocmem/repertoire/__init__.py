"""Immune repertoire classification in the DeepRC style: massive multiple-instance learning (docs/repertoire.md).

A repertoire is a bag of 10^3 to 10^6 CDR3 amino-acid sequences; its label (disease status) is carried by a tiny
fraction of them. ``alphabet.py`` (the amino-acid codes), ``bag.py`` (:class:`Repertoire`), ``motif.py``
(:class:`Motif`), ``background.py`` and ``simulate.py`` (simulated data sets), ``airr.py`` (reading one AIRR or
DeepRC file), ``cache.py`` (the encoded cache), ``dataset.py`` (:class:`RepertoireDataset`, the split),
``metrics.py`` (ROC curve and area), ``kmer.py`` (the k-mer logistic regression baseline). The model:
``embedding.py`` (the sequence CNN), ``gapped.py`` (gapped k-mers: the features and an embedding from them),
``pooling.py`` (attention, mean, max), ``model.py`` (:class:`RepertoireClassifier`), ``config.py``
(:class:`RepertoireConfig`), ``training.py`` and ``run.py`` (training runs with exact resume).
"""

from assocmem.repertoire.airr import FileFormatError
from assocmem.repertoire.alphabet import AMINO_ACIDS, PAD, decode, encode
from assocmem.repertoire.attribution import Attribution, attribute_bag, integrated_gradients
from assocmem.repertoire.bag import Repertoire
from assocmem.repertoire.config import RepertoireConfig
from assocmem.repertoire.dataset import RepertoireDataset
from assocmem.repertoire.explain import (
    BagExplanation,
    MotifRate,
    explain_bag,
    motif_in_top,
    weights_table,
    write_weights,
)
from assocmem.repertoire.figures import logo_figure, roc_figure, witness_figure
from assocmem.repertoire.gapped import gapped_counts
from assocmem.repertoire.kmer import KmerResult, kmer_baseline, kmer_counts
from assocmem.repertoire.metrics import roc_auc, roc_curve
from assocmem.repertoire.model import RepertoireClassifier, RepertoireOutput
from assocmem.repertoire.motif import Motif
from assocmem.repertoire.recovery import RecoveredMotif, recover_motif
from assocmem.repertoire.simulate import simulate

__all__ = [
    "AMINO_ACIDS",
    "PAD",
    "FileFormatError",
    "KmerResult",
    "Motif",
    "Repertoire",
    "RepertoireClassifier",
    "RepertoireConfig",
    "RepertoireDataset",
    "RepertoireOutput",
    "decode",
    "encode",
    "gapped_counts",
    "kmer_baseline",
    "kmer_counts",
    "roc_auc",
    "roc_curve",
    "simulate",
]
#: The explanations (docs/repertoire.md, "Explanations"): weights, rankings, motif recovery, attributions, figures.
__all__ += [
    "Attribution",
    "BagExplanation",
    "MotifRate",
    "RecoveredMotif",
    "attribute_bag",
    "explain_bag",
    "integrated_gradients",
    "logo_figure",
    "motif_in_top",
    "recover_motif",
    "roc_figure",
    "weights_table",
    "witness_figure",
    "write_weights",
]
