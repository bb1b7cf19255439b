"""A per-pixel myofibril-direction net supervised by the simulator's rendered direction field
(issue 13, directionality; a probe, not part of any model).

The directionality rating cuts the spread of the *rendered* directions over a cell's
oriented pixels, every pixel weighted equally, including the many fibre and beaded-row
pixels that show little (``offline.experiments.cells_direction_probe``). The packaged cue
measures directions only where the sarcomere band is strong. This net learns the direction
itself: the pattern net's body (stride-2 stem, dilated 3×3 convolutions, one more dilation
for a receptive field of about 120 input pixels) → two channels regressing (cos 2θ, sin 2θ)
at half resolution, a masked mean squared error on the oriented pixels of cardiomyocytes
(``StructureField.direction_rad``), quarter turns and flips as augmentation (a quarter turn
negates both channels; a flip negates sin 2θ).

``python -m offline.experiments.cells_direction_net train --fields 120 --val-fields 30
--out build/direction-net.pt`` (training fields 0–119 with randomized rendering, as the
packaged pattern net; training fields 120–149 choose the epoch, so no validation field is
read), then ``python -m offline.experiments.cells_direction_probe --net build/direction-net.pt``.
"""

from __future__ import annotations

import argparse
import logging
import sys

import numpy as np

log = logging.getLogger(__name__)

STRIDE = 2


def _net(width: int = 24):
    import torch
    from torch import nn

    class DirectionNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            layers: list[nn.Module] = [nn.Conv2d(1, width, 3, 2, 1), nn.ReLU(inplace=True)]
            for dilation in (1, 2, 4, 8, 16):
                layers += [nn.Conv2d(width, width, 3, 1, dilation, dilation=dilation),
                           nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
            layers.append(nn.Conv2d(width, 2, 1))
            self.body = nn.Sequential(*layers)

        def forward(self, image: torch.Tensor) -> torch.Tensor:
            return self.body(image)

    return DirectionNet()


def field_patches(index: int, first: int, per_field: int = 24,
                  rendering: str = "randomized") -> tuple[np.ndarray, np.ndarray]:
    """``per_field`` normalized patches (n, 1, 96, 96) of training field ``first + index``
    and their targets (n, 2, 48, 48): cos 2θ, sin 2θ, NaN off the oriented cell pixels; 90 %
    of the patches are centred on an oriented pixel."""
    from offline.cellstruct.patterns import normalized_field, patch_windows

    field, image = normalized_field("train", first + index, rendering)
    direction = field.direction_rad
    target = np.stack([np.cos(2 * direction), np.sin(2 * direction)]).astype(np.float32)
    windows = patch_windows(np.random.default_rng([first + index, 6]),
                            np.argwhere(np.isfinite(direction)), image.shape, per_field, 0.9)
    xs = [image[window][None] for window in windows]
    ys = [target[(slice(None), *window)][:, ::STRIDE, ::STRIDE] for window in windows]
    return np.stack(xs), np.stack(ys)


def direction_data(first: int, n_fields: int, workers: int) -> tuple[np.ndarray, np.ndarray]:
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=workers) as pool:
        parts = list(pool.map(field_patches, range(n_fields), [first] * n_fields))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _augment(x, y, k: int, flip: bool):
    import torch

    x = torch.rot90(x, k, (2, 3))
    y = torch.rot90(y, k, (2, 3))
    if k % 2:
        y = -y
    if flip:
        x, y = torch.flip(x, (3,)), torch.flip(y, (3,))
        y = torch.stack([y[:, 0], -y[:, 1]], 1)
    return x, y


def masked_mse(predicted, target):
    import torch

    valid = torch.isfinite(target[:, 0])
    if not bool(valid.any()):
        return predicted.sum() * 0.0
    diff = (predicted - torch.nan_to_num(target)) ** 2
    return diff.sum(1)[valid].mean()


def train(train_data, val_data, epochs: int, seed: int = 0, batch: int = 16,
          width: int = 24, lr: float = 3e-3):
    """The net with the best loss on ``val_data`` over ``epochs`` of AdamW, the learning rate
    falling from ``lr`` to 0 on a cosine."""
    import torch

    from offline.cellstruct.train import fit_best

    torch.manual_seed(seed)
    net = _net(width)
    x_tr, y_tr = (torch.from_numpy(a) for a in train_data)
    x_va, y_va = (torch.from_numpy(a) for a in val_data)

    def batch_loss(idx, generator):
        k = int(torch.randint(0, 4, (1,), generator=generator))
        flip = bool(torch.randint(0, 2, (1,), generator=generator))
        x, y = _augment(x_tr[idx], y_tr[idx], k, flip)
        return masked_mse(net(x), y)

    def val_loss():
        return sum(masked_mse(net(x_va[i:i + 64]), y_va[i:i + 64]) * len(x_va[i:i + 64])
                   for i in range(0, len(x_va), 64)) / len(x_va)

    return fit_best(net, batch_loss, val_loss, len(x_tr), epochs, lr, seed, batch,
                    "direction net", cosine=True)


def add_train_arguments(sub, fields: int, epochs: int):
    """The ``train`` subcommand's arguments (shared with the other probes' nets)."""
    t = sub.add_parser("train")
    t.add_argument("--fields", type=int, default=fields)
    t.add_argument("--val-fields", type=int, default=30)
    t.add_argument("--epochs", type=int, default=epochs)
    t.add_argument("--workers", type=int, default=2)
    t.add_argument("--out", required=True)
    return t


def train_and_save(args, make_data, fit) -> int:
    """Patches of training fields ``0 … fields − 1`` (training) and the next ``val_fields``
    (the epoch choice) from ``make_data(first, n, workers)``, ``fit(train, val)``, saved."""
    import torch

    torch.set_num_threads(2)
    train_data = make_data(0, args.fields, args.workers)
    val_data = make_data(args.fields, args.val_fields, args.workers)
    log.info("patches: %d training, %d for the epoch choice", len(train_data[0]),
             len(val_data[0]))
    torch.save(fit(train_data, val_data).state_dict(), args.out)
    log.info("wrote %s", args.out)
    return 0


def load(path: str, width: int = 24):
    import torch

    net = _net(width)
    net.load_state_dict(torch.load(path, weights_only=True))
    return net.eval()


def predict(net, image: np.ndarray) -> np.ndarray:
    """(2, ⌈Y/2⌉, ⌈X/2⌉) predicted (cos 2θ, sin 2θ) of a normalized field image."""
    import torch

    with torch.inference_mode():
        return net(torch.from_numpy(image[None, None].astype(np.float32)))[0].numpy()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    t = add_train_arguments(sub, 120, 12)
    t.add_argument("--width", type=int, default=24)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    return train_and_save(args, direction_data,
                          lambda tr, va: train(tr, va, args.epochs, width=args.width))

if __name__ == "__main__":
    sys.exit(main())
