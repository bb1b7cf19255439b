"""Lovász-softmax with the ignore label and masked context frames; distillation."""

import torch

from offline.losses import (
    SegmentationLoss,
    distillation_loss,
    lovasz_softmax,
    weighted_cross_entropy,
)


def _perfect_logits(labels: torch.Tensor, n_classes: int = 4) -> torch.Tensor:
    onehot = torch.nn.functional.one_hot(labels.clamp(max=n_classes - 1), n_classes)
    return (onehot.movedim(-1, 1).float() * 40.0) - 20.0


def test_lovasz_zero_for_perfect_prediction():
    labels = torch.randint(0, 4, (2, 16, 8))
    loss = lovasz_softmax(_perfect_logits(labels), labels)
    assert float(loss) < 1e-6


def test_lovasz_ignores_label_4():
    labels = torch.randint(0, 4, (2, 16, 8))
    logits = _perfect_logits(labels)
    noisy = labels.clone()
    noisy[:, :4] = 4  # wrong predictions there do not count once ignored
    logits[:, :, :4] = -logits[:, :, :4]
    assert float(lovasz_softmax(logits, noisy)) < 1e-6
    assert float(lovasz_softmax(logits, labels)) > 0.1


def test_masked_context_frames():
    labels = torch.randint(0, 4, (1, 20, 6))
    logits = _perfect_logits(labels)
    logits[:, :, :3] = torch.randn(1, 4, 3, 6) * 10
    logits[:, :, -2:] = torch.randn(1, 4, 2, 6) * 10
    assert float(lovasz_softmax(logits, labels, mask_frames=(3, 2))) < 1e-6
    assert float(weighted_cross_entropy(logits, labels, mask_frames=(3, 2))) < 1e-6


def test_segmentation_loss_gradients_flow():
    labels = torch.randint(0, 5, (2, 12, 10))
    logits = torch.randn(2, 4, 12, 10, requires_grad=True)
    loss = SegmentationLoss(ce_weight=1.0, class_weights=[1, 5, 5, 5], mask_frames=(2, 2))(logits, labels)
    loss.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


def test_all_ignored_gives_zero():
    labels = torch.full((1, 4, 4), 4)
    logits = torch.randn(1, 4, 4, 4, requires_grad=True)
    loss = SegmentationLoss(ce_weight=1.0)(logits, labels)
    assert float(loss.detach()) == 0.0


def test_distillation_is_zero_on_the_teacher_and_counts_only_valid_pixels():
    torch.manual_seed(0)
    labels = torch.randint(0, 4, (2, 16, 8))
    teacher = torch.randn(2, 4, 16, 8)
    assert float(distillation_loss(teacher.clone(), teacher, labels)) < 1e-6
    student = teacher.clone()
    student[:, :, :4] = torch.randn(2, 4, 4, 8)
    assert float(distillation_loss(student, teacher, labels)) > 0.01
    ignored = labels.clone()
    ignored[:, :4] = 4  # the differing frames ignored ...
    assert float(distillation_loss(student, teacher, ignored)) < 1e-6
    # ... or masked as context frames
    assert float(distillation_loss(student, teacher, labels, mask_frames=(4, 0))) < 1e-6
    student.requires_grad_(True)
    distillation_loss(student, teacher, labels, temperature=3.0).backward()
    assert student.grad is not None and float(student.grad.abs().sum()) > 0


def test_pixel_weights_of_ones_change_nothing_and_weights_shift_the_mean():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 6, 5)
    labels = torch.randint(0, 4, (2, 6, 5))
    labels[0, 0, 0] = 4
    ones = torch.ones(2, 6, 5)
    plain = weighted_cross_entropy(logits, labels, [1.0, 3.0, 3.0, 8.0])
    assert torch.allclose(weighted_cross_entropy(logits, labels, [1.0, 3.0, 3.0, 8.0],
                                                 pixel_weights=ones), plain)
    # all weight on one pixel: the loss is that pixel's cross-entropy
    only = torch.zeros(2, 6, 5)
    only[1, 2, 3] = 1.0
    one = weighted_cross_entropy(logits, labels, [1.0, 3.0, 3.0, 8.0], pixel_weights=only)
    expected = torch.nn.functional.cross_entropy(logits[1:2, :, 2, 3], labels[1:2, 2, 3])
    assert torch.allclose(one, expected)
    teacher = torch.randn(2, 4, 6, 5)
    assert torch.allclose(distillation_loss(logits, teacher, labels, 2.0, pixel_weights=ones),
                          distillation_loss(logits, teacher, labels, 2.0))
    loss = SegmentationLoss(ce_weight=1.0)(logits.requires_grad_(), labels, only)
    loss.backward()
    assert logits.grad[0].abs().sum() > 0  # the Lovász term still sees every pixel
