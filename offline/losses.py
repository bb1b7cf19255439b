"""Training losses: Lovász-softmax (Berman et al. 2018) + optional weighted cross-entropy, and
knowledge distillation from a teacher network's softened classes (Hinton et al. 2015).

Pixels labelled ``ignore`` (4) and the frames at the start/end of a window that lack temporal
context are excluded from both terms. Optional per-pixel weights (:mod:`offline.separation`)
weight the cross-entropy and the distillation term.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from acquisition.labels import IGNORE


def lovasz_grad(gt_sorted: torch.Tensor) -> torch.Tensor:
    """Gradient of the Lovász extension of the Jaccard loss w.r.t. sorted errors."""
    gts = gt_sorted.sum()
    intersection = gts - gt_sorted.cumsum(0)
    union = gts + (1.0 - gt_sorted).cumsum(0)
    jaccard = 1.0 - intersection / union
    if gt_sorted.numel() > 1:
        jaccard[1:] = jaccard[1:] - jaccard[:-1]
    return jaccard


def lovasz_softmax_flat(
    probs: torch.Tensor, labels: torch.Tensor, classes: str = "present"
) -> torch.Tensor:
    """Lovász-softmax on flattened probabilities ``(P, C)`` and labels ``(P,)``.

    ``classes="present"`` averages over classes present in ``labels`` (Berman's default);
    ``"all"`` over every class.
    """
    if probs.numel() == 0:
        return probs.sum() * 0.0
    n_classes = probs.shape[1]
    losses = []
    for c in range(n_classes):
        fg = (labels == c).to(probs.dtype)
        if classes == "present" and fg.sum() == 0:
            continue
        errors = (fg - probs[:, c]).abs()
        errors_sorted, perm = torch.sort(errors, descending=True)
        losses.append(torch.dot(errors_sorted, lovasz_grad(fg[perm])))
    if not losses:
        return probs.sum() * 0.0
    return torch.stack(losses).mean()


def valid_mask(
    labels: torch.Tensor, ignore: int = IGNORE, mask_frames: Sequence[int] = (0, 0)
) -> torch.Tensor:
    """Boolean mask ``labels.shape``: not ignored and not in the first/last context frames.

    ``labels`` is ``(B, T, ...)``; ``mask_frames = (n_first, n_last)`` frames are excluded.
    """
    valid = labels != ignore
    n_first, n_last = int(mask_frames[0]), int(mask_frames[1])
    if n_first > 0:
        valid[:, :n_first] = False
    if n_last > 0:
        valid[:, labels.shape[1] - n_last:] = False
    return valid


def lovasz_softmax(
    logits: torch.Tensor,
    labels: torch.Tensor,
    ignore: int = IGNORE,
    mask_frames: Sequence[int] = (0, 0),
    per_sample: bool = False,
) -> torch.Tensor:
    """Lovász-softmax from logits ``(B, C, T, ...)`` and labels ``(B, T, ...)``."""
    probs = logits.softmax(dim=1)
    valid = valid_mask(labels, ignore, mask_frames)
    n_classes = probs.shape[1]
    flat_probs = probs.movedim(1, -1).reshape(probs.shape[0], -1, n_classes)
    flat_labels = labels.reshape(labels.shape[0], -1)
    flat_valid = valid.reshape(valid.shape[0], -1)
    if per_sample:
        losses = [lovasz_softmax_flat(p[v], lab[v])
                  for p, lab, v in zip(flat_probs, flat_labels, flat_valid, strict=True)]
        return torch.stack(losses).mean()
    return lovasz_softmax_flat(flat_probs[flat_valid], flat_labels[flat_valid])


def weighted_cross_entropy(
    logits: torch.Tensor,
    labels: torch.Tensor,
    class_weights: Sequence[float] | None = None,
    ignore: int = IGNORE,
    mask_frames: Sequence[int] = (0, 0),
    pixel_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cross-entropy with class weights, ignoring label ``ignore`` and context frames; with
    ``pixel_weights`` (shaped like ``labels``), each pixel's term is also weighted by its own
    weight (a weighted mean, as PyTorch weights classes)."""
    valid = valid_mask(labels, ignore, mask_frames)
    target = torch.where(valid, labels, torch.full_like(labels, -100)).long()
    weight = None
    if class_weights is not None:
        weight = torch.as_tensor(class_weights, dtype=logits.dtype, device=logits.device)
    if not valid.any():
        return logits.sum() * 0.0
    if pixel_weights is None:
        return F.cross_entropy(logits, target, weight=weight, ignore_index=-100)
    per_pixel = F.cross_entropy(logits, target, weight=weight, ignore_index=-100,
                                reduction="none")
    class_weight = (weight[target.clamp(min=0)] if weight is not None
                    else torch.ones_like(per_pixel))
    norm = (class_weight * pixel_weights)[valid].sum()
    return (per_pixel * pixel_weights)[valid].sum() / norm


class SegmentationLoss(torch.nn.Module):
    """``lovasz_weight · Lovász-softmax + ce_weight · weighted CE`` with the same masking."""

    def __init__(
        self,
        lovasz_weight: float = 1.0,
        ce_weight: float = 0.0,
        class_weights: Sequence[float] | None = None,
        mask_frames: Sequence[int] = (0, 0),
        ignore: int = IGNORE,
    ) -> None:
        super().__init__()
        self.lovasz_weight = float(lovasz_weight)
        self.ce_weight = float(ce_weight)
        self.class_weights = None if class_weights is None else list(class_weights)
        self.mask_frames = tuple(int(m) for m in mask_frames)
        self.ignore = ignore

    def forward(self, logits: torch.Tensor, labels: torch.Tensor,
                pixel_weights: torch.Tensor | None = None) -> torch.Tensor:
        """The loss; ``pixel_weights`` (shaped like ``labels``) weight the cross-entropy's
        pixels (the Lovász term is a set measure and takes none)."""
        loss = logits.sum() * 0.0
        if self.lovasz_weight:
            loss = loss + self.lovasz_weight * lovasz_softmax(
                logits, labels, self.ignore, self.mask_frames)
        if self.ce_weight:
            loss = loss + self.ce_weight * weighted_cross_entropy(
                logits, labels, self.class_weights, self.ignore, self.mask_frames,
                pixel_weights)
        return loss


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    temperature: float = 2.0,
    ignore: int = IGNORE,
    mask_frames: Sequence[int] = (0, 0),
    pixel_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Hinton et al. (2015): ``T² · KL(teacher_T ‖ student_T)`` per pixel, averaged over the
    pixels the segmentation loss counts (``labels`` not ``ignore``, context frames out;
    weighted by ``pixel_weights`` where given); ``*_T`` are the class softmaxes of the logits
    divided by ``temperature``."""
    valid = valid_mask(labels, ignore, mask_frames)
    if not valid.any():
        return student_logits.sum() * 0.0
    t = float(temperature)
    log_student = F.log_softmax(student_logits / t, dim=1)
    log_teacher = F.log_softmax(teacher_logits.detach() / t, dim=1)
    kl = (log_teacher.exp() * (log_teacher - log_student)).sum(dim=1)
    if pixel_weights is None:
        return kl[valid].mean() * t * t
    return (kl * pixel_weights)[valid].sum() / pixel_weights[valid].sum() * t * t
