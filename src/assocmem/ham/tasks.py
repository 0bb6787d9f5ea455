"""What a HAM run trains and measures, per task: ``classify``, ``reconstruct``, ``patches`` (docs/ham.md, "Recipes").

:mod:`assocmem.ham.run` holds one training loop, checkpoint format and resume rule for every task; a
:class:`Task` says how to build the task's model from its recipe, the loss of a minibatch, what must follow an
optimiser step, which extra state a checkpoint holds, and how the test set is measured.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from assocmem.ham import patches as pt
from assocmem.ham import reconstruction as rec
from assocmem.ham.classifier import HAMClassifier
from assocmem.ham.config import HamConfig
from assocmem.ham.data import ImageData
from assocmem.ham.evaluation import energy_traces, evaluate
from assocmem.ham.task_config import PatchesConfig, ReconstructConfig

#: the raw memories' shift of each initialisation of the reconstruction recipe
INIT_SHIFT = {"shifted": 0.2, "zero_mean": 0.0}


class Task:
    """The classification recipes (:class:`~assocmem.ham.classifier.HAMClassifier`)."""

    name = "classify"
    #: the test measure ``metrics.json`` leads with, and whether higher is better
    headline = "accuracy"
    #: where the relaxations of :meth:`energies` end (energy.png plots the energy above it)
    energy_end = "fixed point"
    #: whether the loss draws random numbers (noise, masks) from the run's second generator
    noisy = False

    def build(self, config: HamConfig, generator: torch.Generator) -> nn.Module:
        return HAMClassifier(config, generator)

    def loss(
        self,
        model: nn.Module,
        config: HamConfig,
        images: Tensor,
        labels: Tensor,
        noise: torch.Generator | None,
    ) -> tuple[Tensor, int | None]:
        """The minibatch's loss and its number of correct answers (None where the task has no labels)."""
        logits = model.logits(images, config.gradient)
        return F.cross_entropy(logits, labels), int((logits.detach().argmax(1) == labels).sum())

    def after_step(self, model: nn.Module) -> None:
        model.bound()

    def state(self, model: nn.Module) -> dict[str, Tensor]:
        """Tensors beside the parameters that an exact resume needs (checkpoint keys ``bound.*``)."""
        return model.bound_state()

    def load_state(self, model: nn.Module, tensors: dict[str, Tensor]) -> None:
        model.load_bound_state(tensors)

    def evaluate(self, model: nn.Module, config: HamConfig, data: ImageData) -> dict:
        """At the fixed point, in minibatches of the training's size: a relaxation runs until its slowest sample
        settles, so smaller minibatches stop sooner (the 32-channel recipe: 500 test images in 29 s at 128 a
        minibatch, 84 s at 500; the same accuracy)."""
        images = data.test_images.to(getattr(torch, config.dtype))
        return evaluate(model, images, data.test_labels, batch_size=config.batch_size)

    def certificate(self, model: nn.Module) -> str:
        return str(model.certificate())

    def energies(self, model: nn.Module, config: HamConfig, data: ImageData, count: int = 32) -> Tensor:
        """The energy ``(steps + 1, count)`` along the inference relaxation of the first ``count`` test images
        (strict: a relaxation that does not settle is an error)."""
        return energy_traces(model, data.test_images[:count].to(getattr(torch, config.dtype)))


class Reconstruct(Task):
    """MNIST reconstruction with spherical image neurons and unit-norm log-sum-exp memories."""

    name = "reconstruct"
    headline = "one_step_mse"
    noisy = True

    def build(self, config: ReconstructConfig, generator: torch.Generator) -> nn.Module:
        return rec.reconstruction_network(
            config.memories,
            784,
            config.beta,
            init_shift=INIT_SHIFT[config.init],
            generator=generator,
            dtype=getattr(torch, config.dtype),
        )

    def loss(
        self,
        model: nn.Module,
        config: ReconstructConfig,
        images: Tensor,
        labels: Tensor,
        noise: torch.Generator | None,
    ) -> tuple[Tensor, int | None]:
        clean = rec.unit_images(images, getattr(torch, config.dtype))
        return (
            rec.denoising_loss(
                model, clean, config.noise, steps=config.steps, alpha=config.alpha, generator=noise
            ),
            None,
        )

    def after_step(self, model: nn.Module) -> None:
        pass

    def state(self, model: nn.Module) -> dict[str, Tensor]:
        return {}

    def load_state(self, model: nn.Module, tensors: dict[str, Tensor]) -> None:
        pass

    def evaluate(self, model: nn.Module, config: ReconstructConfig, data: ImageData) -> dict:
        return rec.evaluate_reconstruction(
            model,
            rec.unit_images(data.test_images, getattr(torch, config.dtype)),
            noise=config.noise,
            minibatch=config.batch_size,
            fixed_point_size=config.fixed_point_size,
            tol=config.tol,
            t_max=config.t_max,
            rtol=config.rtol,
        )

    def energies(
        self, model: nn.Module, config: ReconstructConfig, data: ImageData, count: int = 32
    ) -> Tensor:
        """From the first ``count`` test images with the recipe's noise (the evaluation's draw), to the fixed point."""
        clean = rec.unit_images(data.test_images[:count], getattr(torch, config.dtype))
        noise = torch.randn(
            clean.shape, generator=torch.Generator().manual_seed(rec.EVAL_SEED), dtype=clean.dtype
        )
        return rec.settle(model, clean + config.noise * noise, tol=config.tol, t_max=config.t_max).energies

    def certificate(self, model: nn.Module) -> str:
        k, beta = model.synapses[0].xi.shape[0], model.synapses[0].lagrangian.beta
        return f"bounded below: E >= -1 - log({k})/{beta:g} (unit memories, spherical image neurons)"


class Patches(Reconstruct):
    """Masked-patch completion with an Energy-Transformer block."""

    name = "patches"
    headline = "block_mse"
    energy_end = "last step"  # the block's trained steps: not a fixed point

    def build(self, config: PatchesConfig, generator: torch.Generator) -> nn.Module:
        model = pt.PatchCompleter(
            28,
            config.patch,
            config.dim,
            config.heads,
            config.key_dim,
            config.memories,
            config.steps,
            config.dt,
            generator=generator,
        )
        return model.to(getattr(torch, config.dtype))

    def loss(
        self,
        model: nn.Module,
        config: PatchesConfig,
        images: Tensor,
        labels: Tensor,
        noise: torch.Generator | None,
    ) -> tuple[Tensor, int | None]:
        images = images.reshape(-1, 28, 28).to(getattr(torch, config.dtype))
        mask = pt.random_mask(images.shape[0], (28 // config.patch) ** 2, config.masked, noise)
        predicted, _ = model(images, mask, record=False)
        return pt.masked_mse(predicted, pt.patchify(images, config.patch), mask), None

    def evaluate(self, model: nn.Module, config: PatchesConfig, data: ImageData) -> dict:
        dtype = getattr(torch, config.dtype)
        mean_patch = pt.patchify(data.train_images.reshape(-1, 28, 28), config.patch).mean(0).to(dtype)
        return pt.evaluate_patches(
            model,
            data.test_images.reshape(-1, 28, 28).to(dtype),
            mean_patch,
            masked=config.masked,
            fixed_point_size=config.fixed_point_size,
            tol=config.tol,
            t_max=config.t_max,
        )

    def energies(self, model: nn.Module, config: PatchesConfig, data: ImageData, count: int = 32) -> Tensor:
        """Over the block's trained steps, from the first ``count`` test images with the evaluation's masks."""
        images = data.test_images[:count].reshape(-1, 28, 28).to(getattr(torch, config.dtype))
        gen = torch.Generator().manual_seed(pt.EVAL_SEED)
        mask = pt.random_mask(images.shape[0], (28 // config.patch) ** 2, config.masked, gen)
        with torch.no_grad():
            return model(images, mask, gradient=None)[1].energies

    def certificate(self, model: nn.Module) -> str:
        return "bounded below: layer-norm tokens (|g| = sqrt(D)) bound the attention and the ReLU-squared memories"


TASKS = {"classify": Task(), "reconstruct": Reconstruct(), "patches": Patches()}


def task_of(config: HamConfig | ReconstructConfig | PatchesConfig) -> Task:
    """The :class:`Task` a recipe is for (a :class:`~assocmem.ham.config.HamConfig` classifies)."""
    return TASKS[getattr(config, "task", "classify")]
