"""Training the Dense Associative Memory classifier with KH16's published algorithm (docs/reference.md §3).

Per epoch ``e`` (counted from 0): learning rate ``eps = eps0 * decay^e``; temperature ``T`` ramping linearly from
``temperature`` to ``final_temperature`` over the first ``ramp_epochs`` epochs (constant after), ``beta = 1/T^n``.
Per minibatch (``batch_size`` images, the same number from each class when ``balanced``):

    c = tanh(z) (one update of the class neurons),   loss = sum_b sum_a (c_a - t_a)^(2m),   t = +-1
    V <- p V - dloss/dxi,     xi_mu <- clip(xi_mu + eps V_mu / max_i |V_mu,i|, -1, 1)   (every memory moves by eps)

The gradient is computed in closed form (:func:`loss_gradient`): the two matrix products of the pixels with the
memories (forward ``(B, P) x (P, K)``, backward ``(K, B) x (B, P)``) and fused elementwise passes; it is checked
against autograd in the tests. Checkpoints, resuming and the run folder are in :mod:`.classifier_run`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from assocmem.checks import is_count, positive_float, require_tensor, value_checks_enabled, where_not_finite
from assocmem.classifier.class_update import Fused, one_thread
from assocmem.classifier.data import Data
from assocmem.classifier.model import DAMClassifier
from assocmem.classifier.products import addmm_rows
from assocmem.pool import ThreadShare

#: KH16's settings for large n (docs/reference.md §3: m ~ 30, T constant 500-700; the notebook's values at n = 20).
LARGE_N = {"m": 30, "momentum": 0.6, "temperature": 540.0, "final_temperature": 540.0, "ramp_epochs": 0}
#: The degree from which :meth:`TrainConfig.for_degree` uses :data:`LARGE_N`.
LARGE_N_FROM = 10


@dataclass
class TrainConfig:
    """Model and training hyper-parameters (KH16's names in brackets); everything a run is reproduced from."""

    memories: int = 2000  # K
    n: float = 3  # degree of F
    F: str = "rectified"  # "rectified" (ReP_n) or "power" (x^n)
    m: int = 3  # loss power: sum (c - t)^(2m)
    epochs: int = 3000
    batch_size: int = 1000
    lr: float = 0.04  # eps0
    lr_decay: float = 0.998  # f
    momentum: float = 0.95  # p
    temperature: float = 300.0  # T at epoch 0
    final_temperature: float = 100.0  # T after the ramp
    ramp_epochs: int = 200
    init_mean: float = -0.3
    init_std: float = 0.3
    class_state: float = -1.0  # x0, the class neurons' initial value
    balanced: bool = True  # minibatches with batch_size / classes images of each class
    seed: int = 0
    dtype: str = "float32"
    dataset: str = "mnist"
    train_size: int | None = None  # the first N training images (None: all)
    pixels: int = 784
    classes: int = 10

    #: Fields that may differ when a run is resumed (the rest must match the checkpoint).
    RESUMABLE = ("epochs",)

    def __post_init__(self) -> None:
        _check_degree(self.n, "TrainConfig")
        if self.F not in ("rectified", "power"):
            raise ValueError(f"TrainConfig: F must be 'rectified' or 'power', got {self.F!r}")
        for name in ("init_mean", "class_state"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"TrainConfig: {name} must be a finite number, got {value!r}")
        if not is_count(self.seed, 0):
            raise ValueError(f"TrainConfig: seed must be an int >= 0, got {self.seed!r}")
        if not isinstance(self.balanced, bool):
            raise TypeError(f"TrainConfig: balanced must be True or False, got {self.balanced!r}")
        positive_ints = ("memories", "m", "epochs", "batch_size", "pixels", "classes")
        for name in positive_ints:
            value = getattr(self, name)
            if not is_count(value):
                raise ValueError(f"TrainConfig: {name} must be a positive int, got {value!r}")
        if (
            isinstance(self.ramp_epochs, bool)
            or not isinstance(self.ramp_epochs, int)
            or self.ramp_epochs < 0
        ):
            raise ValueError(f"TrainConfig: ramp_epochs must be an int >= 0, got {self.ramp_epochs!r}")
        for name in ("lr", "temperature", "final_temperature", "init_std"):
            value = getattr(self, name)
            if isinstance(value, bool) or not (isinstance(value, int | float) and 0 < value < math.inf):
                raise ValueError(
                    f"TrainConfig: {name} must be a positive number, got {getattr(self, name)!r}"
                )
        if self.ramp_epochs == 0 and self.temperature != self.final_temperature:
            raise ValueError(
                f"TrainConfig: with ramp_epochs=0 the temperature is constant; temperature ({self.temperature}) "
                f"and final_temperature ({self.final_temperature}) must be equal"
            )
        if not (isinstance(self.lr_decay, int | float) and 0 < self.lr_decay <= 1):
            raise ValueError(f"TrainConfig: lr_decay must be in (0, 1], got {self.lr_decay!r}")
        if not (isinstance(self.momentum, int | float) and 0 <= self.momentum < 1):
            raise ValueError(f"TrainConfig: momentum must be in [0, 1), got {self.momentum!r}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"TrainConfig: dtype must be 'float32' or 'float64', got {self.dtype!r}")
        groups = max(2, self.classes)
        if self.balanced and self.batch_size % groups:
            raise ValueError(
                f"TrainConfig: balanced minibatches need batch_size divisible by the {groups} classes, "
                f"got {self.batch_size}"
            )
        if self.train_size is not None and (not isinstance(self.train_size, int) or self.train_size < 1):
            raise ValueError(
                f"TrainConfig: train_size must be a positive int or None, got {self.train_size!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def for_degree(cls, n: float, **settings: Any) -> TrainConfig:
        """KH16's settings for the regime of ``n``, then ``settings`` (``None`` values are left out).

        Small ``n``: the field defaults (``m = 3``, ``T`` from 300 down to 100 over 200 epochs, momentum 0.95,
        ``eps0 = 0.04``; tuned within the published ranges, docs/classifier.md). ``n >= LARGE_N_FROM``:
        :data:`LARGE_N` (``m = 30``, ``T = 540`` constant, momentum 0.6: KH16's notebook at ``n = 20``).
        """
        _check_degree(n, "TrainConfig.for_degree")
        base = dict(LARGE_N) if n >= LARGE_N_FROM else {}
        given = {k: v for k, v in settings.items() if v is not None}
        base.update(given)
        if base.get("ramp_epochs", cls.ramp_epochs) == 0:  # a constant temperature: one value names it
            for one, other in (("temperature", "final_temperature"), ("final_temperature", "temperature")):
                if one in given and other not in given:
                    base[other] = given[one]
        return cls(n=n, **base)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        if not isinstance(d, dict):
            raise TypeError(f"TrainConfig.from_dict: d must be a dict of settings, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"TrainConfig: unknown settings {unknown} (known: {sorted(known)})")
        return cls(**d)

    def lr_at(self, epoch: int) -> float:
        """``eps0 * decay^epoch``."""
        _check_epoch(epoch, "TrainConfig.lr_at")
        return self.lr * self.lr_decay**epoch

    def temperature_at(self, epoch: int) -> float:
        """``T`` ramps linearly from ``temperature`` to ``final_temperature`` over ``ramp_epochs``, then stays."""
        _check_epoch(epoch, "TrainConfig.temperature_at")
        if self.ramp_epochs == 0 or epoch >= self.ramp_epochs:
            return float(self.final_temperature)
        return self.temperature + (self.final_temperature - self.temperature) * epoch / self.ramp_epochs

    def model(self, generator: torch.Generator | None = None, compile: bool = False) -> DAMClassifier:
        """A fresh classifier with memories drawn from ``N(init_mean, init_std)``."""
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(
                f"TrainConfig.model: generator must be a torch.Generator or None, got {generator!r}"
            )
        if not isinstance(compile, bool):
            raise TypeError(f"TrainConfig.model: compile must be True or False, got {compile!r}")
        return DAMClassifier(
            self.memories,
            self.pixels,
            self.classes,
            n=self.n,
            F=self.F,
            temperature=self.temperature_at(0),
            class_state=self.class_state,
            init_mean=self.init_mean,
            init_std=self.init_std,
            generator=generator,
            dtype=getattr(torch, self.dtype),
            compile=compile,
        )


def _check_degree(n: object, who: str) -> None:
    if isinstance(n, bool) or not isinstance(n, int | float):
        raise TypeError(f"{who}: n must be a positive number (the degree of F), got {n!r}")
    positive_float(n, "n", who)


def _check_epoch(epoch: object, who: str) -> None:
    if not is_count(epoch, 0):
        raise ValueError(f"{who}: epoch must be an int >= 0 (counted from 0), got {epoch!r}")


def check_data(data: Data, config: TrainConfig, who: str) -> None:
    """``data`` as training needs it (docs/bad-input.md): images ``(N, pixels)`` floating point, finite (scanned:
    once per call, small beside the epoch's products), labels ``(N,)`` integers, on one real device, and enough
    training images for one minibatch; otherwise an error naming the split and the argument."""
    if not isinstance(data, Data):
        raise TypeError(f"{who}: data must be an assocmem.classifier.Data, got {type(data).__name__}")
    device = data.train_images.device if isinstance(data.train_images, Tensor) else None
    for split in ("train", "test"):
        images, labels = getattr(data, f"{split}_images"), getattr(data, f"{split}_labels")
        require_tensor(images, f"{split} images", who)
        require_tensor(labels, f"{split} labels", who, floating=False)
        if images.dim() != 2 or images.shape[1] != config.pixels:
            raise ValueError(
                f"{who}: {split} images must have shape (N, {config.pixels}) (pixels in [-1, 1]), got "
                f"{tuple(images.shape)}"
            )
        if labels.shape != images.shape[:1]:
            raise ValueError(
                f"{who}: {split} labels must have shape ({images.shape[0]},), got {tuple(labels.shape)}"
            )
        if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
            raise TypeError(
                f"{who}: {split} labels must be integers (class indices), got dtype {labels.dtype}"
            )
        for name, t in ((f"{split} images", images), (f"{split} labels", labels)):
            if t.device != device:
                raise ValueError(f"{who}: {name} is on {t.device} but train images are on {device}")
        if value_checks_enabled():
            found = where_not_finite(images)
            if found is not None:
                raise ValueError(
                    f"{who}: {split} images hold NaN or Inf ({found}); every value must be finite"
                )
    if data.test_labels.numel() == 0:
        raise ValueError(f"{who}: test images are empty; the test error needs at least one image")
    if data.train_labels.numel() < config.batch_size:  # found here, before the run folder is written
        raise ValueError(
            f"{who}: {data.train_labels.numel()} training images do not fill one minibatch of {config.batch_size} "
            "(--batch-size, --train-size)"
        )


def targets(labels: Tensor, classes: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """``t (N, C)`` with ``+1`` for the label and ``-1`` elsewhere; one neuron (``C = 1``): ``t = 2 label - 1``."""
    if labels.dim() != 1:
        raise ValueError(f"targets: labels must have shape (N,), got {tuple(labels.shape)}")
    top = max(2, classes)
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= top):
        raise ValueError(
            f"targets: labels must lie in 0..{top - 1}, got {int(labels.min())}..{int(labels.max())}"
        )
    if classes == 1:
        return (2.0 * labels.to(dtype) - 1.0)[:, None]
    t = torch.full((labels.numel(), classes), -1.0, dtype=dtype, device=labels.device)
    return t.scatter_(1, labels[:, None], 1.0)


def minibatches(labels: Tensor, batch_size: int, balanced: bool, generator: torch.Generator) -> Tensor:
    """One epoch's minibatches, ``(N // batch_size, batch_size)`` indices into the training set.

    Balanced: each batch holds ``batch_size / G`` images of each of the ``G`` classes; class ``g`` contributes
    ``N // batch_size * batch_size / G`` images, taken from fresh random permutations of its images (a small
    class is cycled through again, a large class is sampled), so every epoch presents ``N`` images. Otherwise
    one random permutation of all images, cut into batches (KH16's notebook).
    """
    count = labels.numel()
    batches = count // batch_size
    if batches == 0:
        raise ValueError(f"minibatches: {count} training images do not fill one batch of {batch_size}")
    if not balanced:
        return torch.randperm(count, generator=generator)[: batches * batch_size].view(batches, batch_size)
    groups = int(labels.max()) + 1 if count else 0
    groups = max(2, groups)
    per = batch_size // groups
    columns = []
    for g in range(groups):
        members = torch.nonzero(labels == g).flatten()
        if members.numel() == 0:
            raise ValueError(
                f"minibatches: class {g} has no training images; balanced batches need every class"
            )
        need = batches * per
        rounds = -(-need // members.numel())
        order = torch.cat(
            [members[torch.randperm(members.numel(), generator=generator)] for _ in range(rounds)]
        )
        columns.append(order[:need].view(batches, per))
    return torch.cat(columns, 1)


@dataclass
class Gradient:
    """The loss of a minibatch and its gradient w.r.t. the memories, ``e^scale_mu * (pixels_mu, classes_mu)``.

    The per-memory factor ``e^scale`` (``scale (K,)``, float64) holds the gradient's magnitude, which spans far
    more than float32's range (``(c - t)^(2m-1)`` with ``m = 30``, ``F'(h/T) ~ (h/T)^29``); ``pixels (K, P)``
    and ``classes (K, C)`` are the gradient divided by it, of order one for the memory's largest term. The
    per-memory normalised update needs only directions, so nothing underflows that would move a memory.
    """

    loss: float
    c: Tensor
    pixels: Tensor
    classes: Tensor
    scale: Tensor

    def full(self) -> Tensor:
        """The gradient itself, ``(K, P + C)`` (may under- or overflow; for checks)."""
        g = torch.cat([self.pixels, self.classes], 1).double() * self.scale.exp()[:, None]
        return g.to(self.pixels.dtype)


def loss_gradient(
    model: DAMClassifier, images: Tensor, t: Tensor, m: int, grad_pixels: Tensor | None = None
) -> Gradient:
    """The loss ``sum (c - t)^(2m)`` of a minibatch (targets ``t = +-1``) and its gradient w.r.t. the memories.

    With ``hs``, ``ds`` as in :meth:`DAMClassifier.scaled_inputs`, ``gz = dloss/dz = 2m (c - t)^(2m-1) (1 - c^2)``
    and ``(dhs, dds)`` the backward of the class fields: ``dloss/dxi_pixels = (dhs^T v) / T`` (one matrix product)
    and ``dloss/dxi_classes = (x0/T) sum_b dhs - (2 x0/T) dds^T``. In scaled form (:class:`Gradient`):
    ``gz`` is computed in the log domain from ``z`` (``|c - t| = 2 sigmoid(-2tz)``, ``1 - c^2 = 4 sigmoid(2z)
    sigmoid(-2z)``; no cancellation in ``1 - c`` near saturation), and the backward is taken per memory relative
    to its largest term (:func:`~assocmem.classifier.class_update.scaled_backward`). ``grad_pixels`` may be given as
    an output buffer ``(K, P)``.
    """
    with torch.no_grad():
        hs, ds = model.scaled_inputs(images)
        z = model.kernels.forward(hs, ds)
        with one_thread():  # (B, C) work: no barrier to wait at (class_update.one_thread)
            tz2 = 2.0 * t * z
            log_wrong = F.logsigmoid(
                -tz2
            )  # log(|c - t| / 2); log(1 - c^2) = log 4 + log_wrong + logsigmoid(tz2)
            log_gz = (2 * m) * log_wrong + F.logsigmoid(tz2) + ((2 * m + 1) * math.log(2.0) + math.log(2 * m))
            log_g = log_gz.amax(1)  # per sample
            g = -t * (log_gz - log_g[:, None]).clamp_min(-80.0).exp()  # no denormal numbers (slow)
            loss = float(torch.logsumexp((2 * m) * (log_wrong.double() + math.log(2.0)).flatten(), 0).exp())
        dhs, dds, dhs_total, scale = model.kernels.gradient(hs, ds, log_g, g)
        inv_t, x0 = 1.0 / model.temperature, model.class_state
        v = images.reshape(images.shape[0], model.pixels)
        if grad_pixels is None:
            grad_pixels = hs.new_empty(model.num_memories, model.pixels)
        addmm_rows(
            grad_pixels, dhs.T, v, beta=0.0, alpha=inv_t, out=grad_pixels, threads=torch.get_num_threads()
        )
        with one_thread():
            grad_classes = dhs_total[:, None] * (x0 * inv_t) - dds.T * (2.0 * x0 * inv_t)
            scale = scale.double()
            c = torch.tanh(z)
    return Gradient(loss, c, grad_pixels, grad_classes, scale)


def _update(
    xi: Tensor, velocity: Tensor, gp: Tensor, gc: Tensor, keep: Tensor, add: Tensor, eps: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """``V <- keep V - add grad``; ``xi <- clip(xi + eps V / max|V| per memory, -1, 1)``; returns ``(V, xi,
    finite)``, ``finite`` whether every new memory is finite (in the same pass, for :func:`train_epoch`).

    ``keep`` and ``add`` ``(K, 1)`` carry the momentum and the per-memory scales (:class:`Step`). ``max|V|`` is
    floored at float32's smallest normal number, so a memory without gradient stays where it is (KH16's
    notebook floors at 1e-30). Functional: torch.compile (2.13) fails on this graph when it writes its inputs.
    """
    v = velocity * keep - add * torch.cat([gp, gc], 1)
    step = eps / v.abs().amax(1, keepdim=True).clamp_min(TINY)
    new = (xi + v * step).clamp(-1.0, 1.0)
    return v, new, torch.isfinite(new).all()


def _moved(gp: Tensor, gc: Tensor) -> Tensor:
    """Which memories have a nonzero gradient ``(K,)``."""
    return (gp.abs().amax(1) > 0) | (gc.abs().amax(1) > 0)


#: The floor of ``max|V|`` per memory (float32's smallest normal number).
TINY = float(torch.finfo(torch.float32).tiny)


class Step:
    """One minibatch of KH16's algorithm on a model, holding the momentum ``V``.

    ``V`` is kept as ``e^log_scale_mu * velocity_mu`` per memory, the same extended range as :class:`Gradient`:
    ``V <- p V - grad`` becomes ``velocity <- p e^(s - s') velocity - e^(g - s') grad/e^g`` with the new scale
    ``s' = max(s + log p, g)``, so both factors are at most one and no memory's momentum underflows.
    """

    def __init__(
        self,
        model: DAMClassifier,
        config: TrainConfig,
        velocity: Tensor | None = None,
        log_scale: Tensor | None = None,
    ) -> None:
        self.model, self.config = model, config
        xi = model.memories
        self.velocity = torch.zeros_like(xi) if velocity is None else velocity.to(xi).clone()
        if log_scale is None:
            log_scale = torch.full((xi.shape[0],), -math.inf, dtype=torch.float64)
        self.log_scale = log_scale.to(device=xi.device, dtype=torch.float64).clone()
        self.grad_pixels = torch.empty(xi.shape[0], model.pixels, dtype=xi.dtype, device=xi.device)
        #: The update in the numba loop of :func:`.fused.update_rows` (fused kernels on a CPU model).
        self.fused = model.kernels.fuses(xi)
        self.update = Fused(_update, model.kernels.compiled)
        self.moved = Fused(_moved, model.kernels.compiled)
        #: Whether the memories after the last step are all finite (0-d bool tensor; checked by train_epoch).
        self.finite = torch.ones((), dtype=torch.bool)
        self._log_p = math.log(config.momentum) if config.momentum > 0 else -math.inf
        #: How many of torch's threads the steps use (all, unless they get no CPU time: :meth:`__call__`).
        self.share = ThreadShare()

    def __call__(self, images: Tensor, t: Tensor, eps: float) -> tuple[float, Tensor]:
        """Train on one minibatch; returns its loss and the class neurons ``c`` before the update.

        On a CPU the step runs on one thread instead of several while the extra threads get no CPU time
        (:class:`assocmem.pool.ThreadShare`; the results do not depend on the thread count)."""
        if images.device.type != "cpu":
            return self._step(images, t, eps)
        requested = torch.get_num_threads()
        threads = self.share.threads(requested)
        wall, cpu = time.perf_counter(), time.process_time()
        if threads == requested:
            result = self._step(images, t, eps)
        else:
            torch.set_num_threads(threads)
            try:
                result = self._step(images, t, eps)
            finally:
                torch.set_num_threads(requested)
        self.share.record(threads, time.process_time() - cpu, time.perf_counter() - wall)
        return result

    def _step(self, images: Tensor, t: Tensor, eps: float) -> tuple[float, Tensor]:
        g = loss_gradient(self.model, images, t, self.config.m, self.grad_pixels)
        if self.fused:
            self._fused_update(g, eps)
            return g.loss, g.c
        with (
            torch.no_grad(),
            one_thread(),
        ):  # elementwise work: no barrier to wait at (class_update.one_thread)
            moved = self.moved(g.pixels, g.classes)
            grad_scale = torch.where(moved, g.scale, -math.inf)
            old = self.log_scale
            new = torch.maximum(old + self._log_p, grad_scale)
            live = new > -math.inf
            keep = torch.where(live & (old > -math.inf), (old + self._log_p - new).exp(), 0.0)
            add = torch.where(live & moved, (grad_scale - new).exp(), 0.0)
            self.log_scale = torch.where(live, new, old)
            dtype = self.velocity.dtype
            xi = self.model.memories
            self.velocity, xi.data, self.finite = self.update(
                xi.detach(),
                self.velocity,
                g.pixels,
                g.classes,
                keep.to(dtype)[:, None],
                add.to(dtype)[:, None],
                torch.tensor(eps, dtype=dtype, device=xi.device),
            )
        return g.loss, g.c

    def _fused_update(self, g: Gradient, eps: float) -> None:
        """The update of :meth:`__call__` in one pass per block of memories (:func:`.fused.update_rows`), writing
        the memories, ``velocity`` and ``log_scale`` in place."""
        from assocmem.classifier import fused

        xi = self.model.memories
        if not xi.is_contiguous():
            xi.data = xi.detach().contiguous()
        self.velocity = self.velocity.contiguous()
        self.log_scale = self.log_scale.contiguous()
        dtype = xi.dtype
        units = -(-xi.shape[0] // fused.UPDATE_ROWS)
        finite = torch.zeros(units, dtype=torch.bool)
        args = (
            xi.detach().numpy(),
            self.velocity.numpy(),
            g.pixels.contiguous().numpy(),
            g.classes.to(dtype).contiguous().numpy(),
            g.scale.contiguous().numpy(),
            self.log_scale.numpy(),
            self._log_p,
            torch.tensor(eps, dtype=dtype).numpy()[()],  # scalars of the memories' dtype, as in _update
            torch.tensor(TINY, dtype=dtype).numpy()[()],
            finite.numpy(),
        )
        fused.run_units(fused.update_rows, args, units, torch.get_num_threads())
        self.finite = finite.all()


def train_epoch(
    step: Step, data: Data, t_all: Tensor, config: TrainConfig, epoch: int, generator: torch.Generator
) -> dict:
    """One epoch: the minibatches, the model updated after each; returns the epoch's record.

    ``train_error`` counts the minibatch images misclassified before each update (as KH16's notebook);
    ``test_error`` is measured after the epoch; ``seconds`` is the training time, ``eval_seconds`` the test's.
    A minibatch whose loss or updated memories are not finite raises :class:`DivergenceError` at once (checked after
    every minibatch: ``K (P + C)`` comparisons, made in the update's own pass, beside the ``B K P`` products).
    """
    who = "train_epoch"
    if not isinstance(step, Step):
        raise TypeError(f"{who}: step must be a training Step, got {type(step).__name__}")
    if not isinstance(config, TrainConfig):
        raise TypeError(f"{who}: config must be a TrainConfig, got {type(config).__name__}")
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"{who}: generator must be a torch.Generator, got {type(generator).__name__}")
    _check_epoch(epoch, who)
    check_data(data, config, who)
    model = step.model
    require_tensor(t_all, "t_all", who)
    if tuple(t_all.shape) != (data.train_labels.shape[0], config.classes):
        raise ValueError(
            f"{who}: t_all must have shape ({data.train_labels.shape[0]}, {config.classes}) (the targets of the "
            f"training images, targets()), got {tuple(t_all.shape)}"
        )
    if t_all.dtype != model.memories.dtype or t_all.device != model.memories.device:
        raise TypeError(
            f"{who}: t_all ({t_all.dtype}, {t_all.device}) must share the memories' dtype and device "
            f"({model.memories.dtype}, {model.memories.device})"
        )
    model.temperature = config.temperature_at(epoch)
    eps = config.lr_at(epoch)
    device = data.train_images.device
    order = minibatches(data.train_labels.cpu(), config.batch_size, config.balanced, generator).to(device)
    start = time.perf_counter()
    loss_sum, wrong = 0.0, torch.zeros((), dtype=torch.long, device=device)
    for i, index in enumerate(order):
        with one_thread():  # a gather: no barrier to wait at
            images, t = data.train_images[index], t_all[index]
        loss, c = step(images, t, eps)
        if not math.isfinite(loss) or not bool(step.finite):
            raise DivergenceError(epoch + 1, i + 1, loss, model.temperature)
        loss_sum += loss
        wrong += (DAMClassifier.labels(c) != data.train_labels[index]).sum()
    seconds = time.perf_counter() - start
    test_error = model.error(data.test_images, data.test_labels)
    seen = order.numel()
    return {
        "epoch": epoch + 1,
        "loss": loss_sum / seen,
        "train_error": int(wrong) / seen,
        "test_error": test_error,
        "lr": eps,
        "temperature": model.temperature,
        "seconds": seconds,
        "eval_seconds": time.perf_counter() - start - seconds,
    }


EpochCallback = Callable[[dict], None]


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss or non-finite memories; the step that did it is named.

    ``note`` (set by :func:`~assocmem.classifier.run.train`) says what the run folder holds.
    """

    def __init__(self, epoch: int, minibatch: int, loss: float, temperature: float) -> None:
        self.epoch, self.minibatch, self.loss, self.temperature = epoch, minibatch, loss, temperature
        self.note = ""
        super().__init__(epoch, minibatch, loss, temperature)

    def __str__(self) -> str:
        what = (
            f"the loss is {self.loss!r}"
            if not math.isfinite(self.loss)
            else "the memories hold non-finite values"
        )
        text = (
            f"training diverged in epoch {self.epoch}, minibatch {self.minibatch}: {what} (temperature "
            f"{self.temperature:g}). The class fields F(h/T) overflow when the temperature is small for the degree "
            "n (h/T ~ 800 at T = 1 on MNIST): raise --temperature / --final-temperature or lower --lr"
        )
        return f"{text}. {self.note}" if self.note else text
