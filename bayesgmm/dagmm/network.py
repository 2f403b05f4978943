"""DAGMM's networks in NumPy: the architecture, seeded initial weights and the forward pass.

Zong et al. (ICLR 2018), Section 3. The **compression network** encodes ``x`` to a code
``z_c`` and decodes it to ``x'``; the sample's low-dimensional representation is

    z = [z_c, relative Euclidean distance ||x - x'|| / ||x||, cosine similarity of x, x'].

The **estimation network** maps ``z`` to mixture memberships ``gamma = softmax(MLN(z))``.
This module is the NumPy forward pass used for prediction and for the validation loss
(no PyTensor compilation after a fit or a load); :mod:`bayesgmm.dagmm.graph` is the same
computation as a PyTensor graph for training, tested equal to this one.

Layers are stored as one flat list of ``(W, b)`` pairs: the encoder, the decoder, then the
estimation network. ``W`` has shape (fan_in, fan_out), ``b`` (fan_out,).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np

__all__ = [
    "ACTIVATIONS",
    "NORM_FLOOR",
    "Architecture",
    "Forward",
    "forward",
    "initial_weights",
    "reconstruction_features",
    "softmax",
    "split_weights",
]

#: Activations of the hidden layers (the paper uses tanh throughout).
ACTIVATIONS = ("tanh", "relu", "sigmoid")
#: Floor on ||x||, ||x'|| and ||x - x'|| in the reconstruction features: a row with
#: ||x|| = 0 (all features exactly at their training mean after standardising) has no
#: relative distance or cosine, and the training gradient of a zero norm is not finite;
#: the floor makes them finite (the only guard; it never acts on other rows).
NORM_FLOOR = 1e-12

_NUMPY_ACTIVATIONS = {
    "tanh": np.tanh,
    "relu": lambda a: np.maximum(a, 0.0),
    "sigmoid": lambda a: 0.5 * (1.0 + np.tanh(0.5 * a)),
}


@dataclass(frozen=True)
class Architecture:
    """The shapes of DAGMM's networks.

    Parameters
    ----------
    n_features : int
        Input dimension D.
    encoder_widths : tuple of int
        Hidden widths of the encoder (the decoder mirrors them).
    latent_dim : int
        Width of the code ``z_c`` (the encoder's last, linear, layer).
    estimation_widths : tuple of int
        Hidden widths of the estimation network (dropout after each).
    n_components : int
        Mixture components K (the estimation network's softmax output).
    activation : str
        One of :data:`ACTIVATIONS`, for every hidden layer; output layers of the encoder
        and decoder are linear, the estimation network's is a softmax.
    """

    n_features: int
    encoder_widths: tuple[int, ...]
    latent_dim: int
    estimation_widths: tuple[int, ...]
    n_components: int
    activation: str = "tanh"

    @property
    def z_dim(self) -> int:
        """Dimension of ``z``: the code plus the two reconstruction features."""
        return self.latent_dim + 2

    def layer_sizes(self) -> dict[str, list[int]]:
        """Unit counts of each network, input to output."""
        encoder = [self.n_features, *self.encoder_widths, self.latent_dim]
        return {
            "encoder": encoder,
            "decoder": encoder[::-1],
            "estimation": [self.z_dim, *self.estimation_widths, self.n_components],
        }

    def layer_shapes(self) -> list[tuple[str, int, int]]:
        """``(network, fan_in, fan_out)`` of every layer, in the flat weight order."""
        return [
            (net, a, b) for net, sizes in self.layer_sizes().items() for a, b in pairwise(sizes)
        ]

    def n_layers(self, network: str) -> int:
        return len(self.layer_sizes()[network]) - 1


def initial_weights(arch: Architecture, rng: np.random.Generator) -> list[np.ndarray]:
    """Glorot-uniform weights and zero biases, ``[W0, b0, W1, b1, ...]`` (float64)."""
    weights = []
    for _, fan_in, fan_out in arch.layer_shapes():
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        weights += [rng.uniform(-limit, limit, size=(fan_in, fan_out)), np.zeros(fan_out)]
    return weights


def split_weights(arch: Architecture, weights: list) -> dict[str, list[tuple]]:
    """The flat list as ``{network: [(W, b), ...]}``."""
    pairs = list(zip(weights[0::2], weights[1::2], strict=True))
    out, start = {}, 0
    for net in ("encoder", "decoder", "estimation"):
        n = arch.n_layers(net)
        out[net] = pairs[start : start + n]
        start += n
    return out


def _mlp(h: np.ndarray, layers: list[tuple], activation, *, last: str) -> np.ndarray:
    for i, (W, b) in enumerate(layers):
        h = h @ W + b
        if i < len(layers) - 1:
            h = activation(h)
    return softmax(h) if last == "softmax" else h


def softmax(a: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (n, K) logits, shifted by the row maximum."""
    e = np.exp(a - a.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _floored_norm(V: np.ndarray) -> np.ndarray:
    """Row norms of ``V`` (n, D), floored at :data:`NORM_FLOOR`."""
    return np.maximum(np.sqrt((V * V).sum(axis=1)), NORM_FLOOR)


def reconstruction_features(X: np.ndarray, X_hat: np.ndarray) -> np.ndarray:
    """(n, 2): relative Euclidean distance ``||x - x'|| / ||x||`` and cosine similarity
    ``x . x' / (||x|| ||x'||)``, norms floored at :data:`NORM_FLOOR`."""
    norm_x = _floored_norm(X)
    norm_r = _floored_norm(X_hat)
    distance = _floored_norm(X - X_hat) / norm_x
    cosine = (X * X_hat).sum(axis=1) / (norm_x * norm_r)
    return np.column_stack([distance, cosine])


@dataclass(frozen=True)
class Forward:
    """The forward pass of one batch: code (n, latent_dim), reconstruction (n, D),
    ``z`` (n, latent_dim + 2) and memberships ``gamma`` (n, K)."""

    code: np.ndarray
    reconstruction: np.ndarray
    z: np.ndarray
    gamma: np.ndarray


def forward(arch: Architecture, weights: list, X: np.ndarray) -> Forward:
    """Compression and estimation networks on ``X`` (n, D), without dropout (inference:
    inverted dropout leaves the expected activations unchanged)."""
    act = _NUMPY_ACTIVATIONS[arch.activation]
    nets = split_weights(arch, weights)
    code = _mlp(X, nets["encoder"], act, last="linear")
    recon = _mlp(code, nets["decoder"], act, last="linear")
    z = np.column_stack([code, reconstruction_features(X, recon)])
    gamma = _mlp(z, nets["estimation"], act, last="softmax")
    return Forward(code, recon, z, gamma)
