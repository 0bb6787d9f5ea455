"""The Dense Associative Memory as a pattern classifier (Krotov & Hopfield 2016), the whole feature.

``model.py`` (:class:`DAMClassifier` and its dual feed-forward network), ``class_update.py`` (the one-step class
update and its backward), ``fused.py`` (their fused numba loops on CPU), ``training.py`` (KH16's training
algorithm), ``run.py`` (run folders: checkpoints, exact resume, metrics.json), ``prototypes.py`` (the
feature-to-prototype measure), ``data.py`` (MNIST-like data as the classifier's pixels).
"""

from assocmem.classifier.data import load_data, to_pixels
from assocmem.classifier.model import DAMClassifier
from assocmem.classifier.prototypes import Votes, active, votes
from assocmem.classifier.run import Run, load_run, train
from assocmem.classifier.training import Data, TrainConfig, train_epoch

__all__ = [
    "DAMClassifier",
    "Data",
    "Run",
    "TrainConfig",
    "Votes",
    "active",
    "load_data",
    "load_run",
    "to_pixels",
    "train",
    "train_epoch",
    "votes",
]
