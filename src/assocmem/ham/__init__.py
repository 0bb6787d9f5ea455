"""Hierarchical associative memories trained on data (docs/ham.md, "Recipes"): classification, MNIST
reconstruction and masked-patch completion.

A recipe (a JSON or TOML file under ``recipes/ham``: :class:`HamConfig` for classification,
:class:`ReconstructConfig` or :class:`PatchesConfig` for the other tasks) builds a general
:class:`~assocmem.Network` (:func:`build_network`), trains it through its relaxation (:func:`train`, with
checkpoints and exact resuming, the same for every task) and evaluates it at the converged fixed point
(:func:`evaluate`), checking on every test input that it is a memory: the energy never rises and the relaxation
settles.
"""

from assocmem.ham import patches, reconstruction
from assocmem.ham.classifier import HAMClassifier, build_network
from assocmem.ham.config import HamConfig, load_recipe
from assocmem.ham.data import ImageData, load_images
from assocmem.ham.evaluation import evaluate
from assocmem.ham.run import HamRun, load_checkpoint, train
from assocmem.ham.task_config import PatchesConfig, ReconstructConfig

__all__ = [
    "HAMClassifier",
    "HamConfig",
    "HamRun",
    "ImageData",
    "PatchesConfig",
    "ReconstructConfig",
    "build_network",
    "evaluate",
    "load_checkpoint",
    "load_images",
    "load_recipe",
    "patches",
    "reconstruction",
    "train",
]
