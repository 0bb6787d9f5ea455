"""Hierarchical associative memories trained on data: the classification recipes (docs/ham.md, "Recipes"),
MNIST reconstruction and masked-patch completion (docs/ham-recipes-recon.md).

A recipe (:class:`HamConfig`, a JSON or TOML file under ``recipes/ham``) builds a general
:class:`~assocmem.Network` (:func:`build_network`), trains it through its relaxation (:func:`train`, with
checkpoints and exact resuming) and evaluates it at the converged fixed point (:func:`evaluate`), checking on every
test input that it is a memory: the energy never rises and the relaxation settles.
"""

from assocmem.ham import patches, reconstruction
from assocmem.ham.classifier import HAMClassifier, build_network
from assocmem.ham.config import HamConfig, load_recipe
from assocmem.ham.data import ImageData, load_images
from assocmem.ham.evaluation import evaluate
from assocmem.ham.run import HamRun, load_checkpoint, train

__all__ = [
    "HAMClassifier",
    "HamConfig",
    "HamRun",
    "ImageData",
    "build_network",
    "evaluate",
    "load_checkpoint",
    "load_images",
    "load_recipe",
    "patches",
    "reconstruction",
    "train",
]
