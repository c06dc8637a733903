"""The training loss: cross-entropy on the class scores, or distillation from a teacher."""
from __future__ import annotations

import torch


def distillation_loss(logits: torch.Tensor, labels: torch.Tensor, teacher: torch.Tensor,
                      weight: float, temperature: float,
                      label_smoothing: float = 0.0) -> torch.Tensor:
    """``(1 - weight) CE(logits, labels) + weight T^2 KL(softmax(teacher / T) || softmax(logits / T))``.

    Hinton et al.'s knowledge distillation: the teacher's whole score distribution is a
    richer target than the label; T^2 keeps the soft term's gradient on the scale of the hard
    one as T changes.  ``logits`` are the GroupSum class scores; ``label_smoothing`` smooths
    the label term only."""
    hard = torch.nn.functional.cross_entropy(logits, labels, label_smoothing=label_smoothing)
    if weight == 0:
        return hard
    t = float(temperature)
    soft = torch.nn.functional.kl_div(torch.log_softmax(logits / t, -1),
                                      torch.log_softmax(teacher.to(logits.dtype) / t, -1),
                                      reduction="batchmean", log_target=True) * (t * t)
    return (1.0 - weight) * hard + weight * soft


def training_loss(logits, labels, taught, plan) -> torch.Tensor:
    """The loss of one batch: distillation when the batch carries teacher scores."""
    if taught:
        return distillation_loss(logits, labels, taught[0], plan.kd_weight, plan.kd_temperature,
                                 plan.label_smoothing)
    return torch.nn.functional.cross_entropy(logits, labels, label_smoothing=plan.label_smoothing)
