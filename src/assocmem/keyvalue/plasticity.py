"""The plasticity rules of the key-value memory: the designed rule and its meta-learnable generalisation.

Tyulmankov et al. 2021, sections 2.2, 2.3 and 3.2 (docs/reference.md §10). Each synapse's update is the product of a
transformed presynaptic rate ``f(pre) = a_f pre + b_f`` and a transformed postsynaptic rate
``g(post) = a_g post + b_g``, scaled by a plasticity rate. Key synapses (input ``x`` -> hidden unit ``i``, row ``i``
of ``K``) and value synapses (hidden unit ``i`` -> output ``y``, column ``i`` of ``V``) each have their own rule:

    K <- (1 - eta^K) * K + eta^K * [g^K(h) f^K(x)^T],          eta^K_ij = q gamma_i eta~^K
    V <- (1 - eta^V) * V + eta^V * [g^V(y) f^V(h')^T],          eta^V_ki = q gamma_i eta~^V   ("local" value rule)
    V <- lambda V + q eta~^V [g^V(y) f^V(h')^T],   lambda = 1 - q + q lambda~                  ("passive" value rule)

with ``h = f_read(K x)`` before the key is written and ``h' = f_read(K' x)`` after (the read-out nonlinearity,
:mod:`assocmem.keyvalue.readout`). The designed rule of section 2 is ``f^K(x) = x``, ``g^K = 1`` (the key synapses
copy the presynaptic input: "pre-only", non-Hebbian) and ``f^V(h') = h'``, ``g^V(y) = y`` (Hebbian), with
``eta~^K = eta~^V = 1``: the selected slot is cleared and overwritten in one shot.

Expanding ``rate * g(post) f(pre)`` gives four coefficients on ``(pre*post, pre, post, 1)`` -- the Hebbian, the
pre-only, the post-only and the constant part of the rule (:meth:`PlasticityRule.coefficients`). The designed key
rule is ``(0, 1, 0, 0)``, the designed value rule ``(1, 0, 0, 0)``. The rule's overall scale trades off against the
read-out's temperature and the decay, so the distance of a learned rule to the designed one is the angle between
these coefficient vectors (:meth:`PlasticityRule.distance`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

#: The coefficients of the designed rules on ``(pre*post, pre, post, 1)``.
DESIGNED = {"key": (0.0, 1.0, 0.0, 0.0), "value": (1.0, 0.0, 0.0, 0.0)}
#: Names of the four coefficients, in order.
COEFFICIENTS = ("hebbian", "pre", "post", "constant")


def _pair(value: object, name: str) -> Tensor:
    if isinstance(value, Tensor) and value.is_meta:
        raise ValueError(f"PlasticityRule: {name} is on the meta device (a shape without values)")
    if isinstance(value, Tensor) and (value.dtype == torch.bool or value.is_complex()):
        raise TypeError(f"PlasticityRule: {name} must hold real numbers, got dtype {value.dtype}")
    if not isinstance(value, Tensor) and any(isinstance(v, bool) for v in _items(value)):
        raise TypeError(f"PlasticityRule: {name} must hold numbers, not bools, got {value!r}")
    try:
        t = torch.as_tensor(value, dtype=torch.get_default_dtype()).detach().clone()
    except (TypeError, ValueError, RuntimeError):
        t = torch.empty(0)
    if t.shape != (2,) or not bool(torch.isfinite(t).all()):
        raise ValueError(f"PlasticityRule: {name} must be a finite pair (slope a, offset b), got {value!r}")
    return t


def _items(value: object) -> list[object]:
    try:
        return list(value)  # type: ignore[call-overload]
    except TypeError:
        return [value]


def _scalar(
    value: object, name: str, low: float = -math.inf, high: float = math.inf, who: str = "PlasticityRule"
) -> Tensor:
    try:
        if isinstance(value, bool):
            raise TypeError
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, RuntimeError):  # RuntimeError: a tensor on the meta device has no value
        raise TypeError(f"{who}: {name} must be a number, got {value!r}") from None
    if not (math.isfinite(v) and low <= v <= high):
        raise ValueError(f"{who}: {name} must be a finite number in [{low:g}, {high:g}], got {value!r}")
    return torch.tensor(v)


class PlasticityRule(nn.Module):
    """The parameters of both synapses' plasticity rules (all trainable ``nn.Parameter`` scalars and pairs).

    ``key_pre``, ``key_post``, ``value_pre``, ``value_post``: ``(slope, offset)`` of ``f^K``, ``g^K``, ``f^V``,
    ``g^V``; ``key_rate``, ``value_rate``: ``eta~^K``, ``eta~^V``; ``value_decay``: ``lambda~`` in ``[0, 1]`` (used
    by the passive value rule only). The defaults are the designed rule of section 2.

    Example: ``PlasticityRule()`` is the designed rule; ``PlasticityRule.uniform(0.01)`` a nearly silent start for
    meta-learning; ``rule.distance()`` the angles (degrees) between its key and value rules and the designed ones.
    """

    def __init__(
        self,
        key_pre: Sequence[float] = (1.0, 0.0),
        key_post: Sequence[float] = (0.0, 1.0),
        value_pre: Sequence[float] = (1.0, 0.0),
        value_post: Sequence[float] = (1.0, 0.0),
        key_rate: float = 1.0,
        value_rate: float = 1.0,
        value_decay: float = 1.0,
    ) -> None:
        super().__init__()
        self.key_pre = nn.Parameter(_pair(key_pre, "key_pre"))
        self.key_post = nn.Parameter(_pair(key_post, "key_post"))
        self.value_pre = nn.Parameter(_pair(value_pre, "value_pre"))
        self.value_post = nn.Parameter(_pair(value_post, "value_post"))
        self.key_rate = nn.Parameter(_scalar(key_rate, "key_rate"))
        self.value_rate = nn.Parameter(_scalar(value_rate, "value_rate"))
        self.value_decay = nn.Parameter(_scalar(value_decay, "value_decay", 0.0, 1.0))

    @classmethod
    def uniform(cls, value: float, rate: float = 0.5, decay: float = 0.95) -> PlasticityRule:
        """Every slope and offset ``value`` (a start that prefers no rule), both rates ``rate``, decay ``decay``."""
        who = "PlasticityRule.uniform"
        value = float(_scalar(value, "value", who=who))
        _scalar(rate, "rate", who=who)
        _scalar(decay, "decay", 0.0, 1.0, who=who)
        pair = (value, value)
        return cls(pair, pair, pair, pair, key_rate=rate, value_rate=rate, value_decay=decay)

    def coefficients(self, synapse: str) -> Tensor:
        """``rate * (a_g a_f, b_g a_f, a_g b_f, b_g b_f)``: the rule on ``(pre*post, pre, post, 1)``, shape (4,).

        ``synapse`` is ``"key"`` or ``"value"``.
        """
        if synapse == "key":
            pre, post, rate = self.key_pre, self.key_post, self.key_rate
        elif synapse == "value":
            pre, post, rate = self.value_pre, self.value_post, self.value_rate
        else:
            raise ValueError(
                f"PlasticityRule.coefficients: synapse must be 'key' or 'value', got {synapse!r}"
            )
        (a_f, b_f), (a_g, b_g) = pre, post
        return rate * torch.stack([a_g * a_f, b_g * a_f, a_g * b_f, b_g * b_f])

    def distance(self) -> dict[str, float]:
        """Angle in degrees between each learned rule's coefficients and the designed rule's (0 = the same rule).

        Keys ``"key"`` and ``"value"``. A rule whose coefficients are all zero (it stores nothing) is 90 degrees
        from everything. A rule holding NaN or Inf (a training run that diverged) is an error naming the parameter.
        """
        for name, p in self.named_parameters():
            if p.is_meta:
                raise ValueError(
                    f"PlasticityRule.distance: {name} is on the meta device (a shape without values)"
                )
            if not bool(torch.isfinite(p.detach()).all()):
                raise ValueError(f"PlasticityRule.distance: {name} holds NaN or Inf ({p.detach().tolist()})")
        out = {}
        for synapse, designed in DESIGNED.items():
            c = self.coefficients(synapse).detach().double()
            ref = torch.tensor(designed, dtype=torch.float64)
            norm = float(c.norm())
            cos = float(c @ ref) / norm if norm > 0 else 0.0
            out[synapse] = math.degrees(math.acos(max(-1.0, min(1.0, cos))))
        return out

    def as_dict(self) -> dict[str, float]:
        """Every parameter as plain numbers (``key_pre_a``, ``key_pre_b``, ..., ``value_decay``)."""
        out: dict[str, float] = {}
        for name in ("key_pre", "key_post", "value_pre", "value_post"):
            a, b = getattr(self, name).detach().tolist()
            out[f"{name}_a"], out[f"{name}_b"] = a, b
        for name in ("key_rate", "value_rate", "value_decay"):
            out[name] = float(getattr(self, name).detach())
        return out

    def extra_repr(self) -> str:
        d = self.distance()
        return f"key rule {d['key']:.1f} deg, value rule {d['value']:.1f} deg from the designed ones"
