"""Every Lagrangian the library ships, in the configurations the tests sweep (with and without bias terms)."""

import torch

from assocmem import lagrangians as L


def all_lagrangians(shape):
    """(label, Lagrangian) pairs; ``shape`` is the layer shape, for biases of that shape."""
    delta = torch.linspace(-0.5, 0.5, int(torch.Size(shape).numel()), dtype=torch.float64).reshape(shape)
    return [
        ("Identity", L.Identity()),
        ("Tanh", L.Tanh(beta=1.7)),
        ("Sigmoid", L.Sigmoid(beta=0.6)),
        ("ReLU", L.ReLU()),
        ("RePU1", L.RePU(1)),
        ("RePU3", L.RePU(3)),
        ("RePU2.5", L.RePU(2.5)),
        ("Polynomial2", L.Polynomial(2)),
        ("Polynomial3", L.Polynomial(3)),
        ("Polynomial4", L.Polynomial(4)),
        ("Exp", L.Exp(beta=0.8)),
        ("LogSumExp", L.LogSumExp(beta=2.0)),
        ("LogSumExp-dim1", L.LogSumExp(beta=0.5, dim=1)),
        ("Sparsemax", L.Sparsemax(beta=1.3)),
        ("Entmax15", L.Entmax15(beta=0.7)),
        ("Spherical", L.Spherical()),
        ("LayerNorm", L.LayerNorm(gamma=1.3)),
        ("LayerNorm-bias", L.LayerNorm(gamma=0.7, delta=delta)),
        ("LayerNorm-scalar-bias", L.LayerNorm(gamma=2.0, delta=0.3)),
        ("LayerNorm-last-dim", L.LayerNorm(gamma=0.9, delta=delta, dim=-1)),
        ("Abs", L.Abs()),
        (
            "Additive-softplus",
            L.Additive(lambda x: torch.nn.functional.softplus(x), convex=True, name="softplus"),
        ),
        ("Additive-cos", L.Additive(torch.cos, convex=False)),
    ]
