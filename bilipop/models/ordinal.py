"""The training losses and how each turns the model's outputs into the five class probabilities.

- ``ce`` (the study): K outputs, softmax, cross-entropy.
- ``corn`` (Shi, Cao & Raschka, "Deep neural networks for rank-consistent ordinal regression based on conditional
  probabilities", 2021): K-1 outputs, output k the logit of the conditional probability ``P(y > k | y > k-1)``.
  Task k is trained with binary cross-entropy only on the examples with ``y > k-1`` (``y >= k``), target
  ``y > k``; the loss is the sum over tasks divided by the number of (example, task) pairs used. Then
  ``P(y > k) = prod_{j <= k} sigmoid(o_j)`` never rises with k (rank-consistent), and the class probabilities
  ``P(y = k) = P(y > k-1) - P(y > k)`` are non-negative and sum to 1.

``balanced`` class weights are ``n / (K * n_k)`` over the training labels (0 for an absent class): in ``ce`` they
weight each example's cross-entropy (torch's weighted mean), in ``corn`` each example's binary terms in every task.
Whatever the loss, the predicted class is the most probable of the five.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from bilipop.train_config import DEFAULT_LOSS

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def outputs(loss: str, num_classes: int) -> int:
    """How many numbers the classifier gives per example for ``loss``."""
    return num_classes - 1 if loss == "corn" else num_classes


def balanced_weights(labels: Sequence[int], num_classes: int) -> list[float]:
    """``n / (K * n_k)`` per class k over ``labels``; 0 for a class with no example."""
    counts = [0] * num_classes
    for y in labels:
        counts[int(y)] += 1
    n = sum(counts)
    return [n / (num_classes * c) if c else 0.0 for c in counts]


def corn_loss(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """The CORN loss of (B, K-1) logits for (B,) labels in 0..K-1 (module docstring); ``weights`` (K,) per class."""
    tasks = logits.shape[1]
    k = torch.arange(tasks, device=logits.device)  # (K-1,)
    y = labels.long().unsqueeze(1)  # (B, 1)
    used = (y >= k).to(logits.dtype)  # (B, K-1): task k sees the examples with y > k-1
    target = (y > k).to(logits.dtype)
    if weights is not None:
        used = used * weights.to(logits.device, logits.dtype)[labels.long()].unsqueeze(1)
    terms = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")  # (B, K-1)
    return (terms * used).sum() / used.sum().clamp_min(torch.finfo(logits.dtype).tiny)


def loss_function(loss: str, class_weights: Sequence[float] | None = None) -> LossFn:
    """``f(logits, labels) -> scalar`` for ``loss``, optionally weighted per class."""
    weights = None if class_weights is None else torch.tensor(list(class_weights), dtype=torch.float32)
    if loss == "corn":
        return lambda logits, labels: corn_loss(logits, labels, weights)

    def ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        w = None if weights is None else weights.to(logits.device, logits.dtype)
        return torch.nn.functional.cross_entropy(logits, labels, weight=w)

    return ce


def probabilities(logits: torch.Tensor, loss: str = DEFAULT_LOSS) -> torch.Tensor:
    """(B, K) class probabilities from the classifier's outputs under ``loss``."""
    logits = logits.float()
    if loss != "corn":
        return logits.softmax(-1)
    above = torch.cumprod(torch.sigmoid(logits), dim=1)  # (B, K-1): P(y > k)
    ones = torch.ones_like(above[:, :1])
    zeros = torch.zeros_like(above[:, :1])
    return torch.cat([ones, above], 1) - torch.cat([above, zeros], 1)  # P(y > k-1) - P(y > k)


def predicted(logits: torch.Tensor, loss: str = DEFAULT_LOSS) -> torch.Tensor:
    """(B,) the most probable class."""
    return probabilities(logits, loss).argmax(1)
