"""Training of the segmentation U-Nets on simulated recordings or a lab's labelled ones.

Adam on random windows (engine window geometry, asymmetric context for the low-latency mode),
flips and intensity / noise / offset augmentation of the raw counts before the engine's ΔF/F0
preprocessing, Lovász-softmax (+ weighted CE) with the ignore label and context frames masked.
Deterministic given the seed (batches are a pure function of ``(seed, step)``); checkpoints every
``checkpoint_every`` steps and ``resume``; a CSV + JSON log of the losses; CUDA when present.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from acquisition.stream_kind import StreamKind
from offline import augmentation, datasets, training_windows
from offline.separation import check_parameters

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """A training config (the JSON files in ``offline/configs``); see its README."""

    name: str
    kind: str
    mode: str
    seed: int
    out: str
    training: dict[str, Any]
    simulation: dict[str, Any]
    augmentation: dict[str, Any]
    model: dict[str, Any]
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        raw = json.loads(Path(path).read_text())
        return cls(name=raw["name"], kind=raw["kind"], mode=raw.get("mode", "accurate"),
                   seed=int(raw.get("seed", 0)), out=raw.get("out", f"runs/{raw['name']}"),
                   training=dict(raw.get("training", {})), simulation=dict(raw.get("simulation", {})),
                   augmentation=dict(raw.get("augmentation", {})), model=dict(raw.get("model", {})),
                   data=dict(raw.get("data", {})))


def model_config_for(cfg: TrainConfig) -> dict[str, Any]:
    """The model's ``config.json`` dict: the engine's default for ``cfg.kind``/``cfg.mode``
    (when ``engine.models.model_dir`` provides one) with ``cfg.model`` merged over it (one
    level deep for dict values)."""
    from engine.models import model_dir

    factory = getattr(model_dir, f"default_{cfg.kind}_config", None)
    base: dict[str, Any] = {}
    if factory is not None:
        made = factory(cfg.mode)
        base = made.to_dict() if hasattr(made, "to_dict") else json.loads(json.dumps(made))
    for key, value in cfg.model.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict) and key not in ("window", "architecture"):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    base.setdefault("schema_version", model_dir.SCHEMA_VERSION)
    base.setdefault("axes", StreamKind.from_model_kind(cfg.kind).axes)
    base.setdefault("name", cfg.name)
    trained = trained_range(cfg)
    if trained:  # the engine warns on streams outside it (engine.quality)
        base.setdefault("calibration", {}).setdefault("trained_range", trained)
        # and the network sees such streams resampled into it (engine.network_scale)
        base["calibration"].setdefault("resample_pixels", True)
    return base


def trained_range(cfg: TrainConfig) -> dict[str, list[float]]:
    """Calibration range the training data span: the simulation's randomized ``pixel_um`` and
    ``dt_ms`` ranges, else its fixed values."""
    randomize = cfg.simulation.get("randomize", {})
    params = cfg.simulation.get("params", {})
    out = {}
    for key in ("pixel_um", "dt_ms"):
        if key in randomize:
            out[key] = [float(v) for v in randomize[key]]
        elif key in params:
            out[key] = [float(params[key])] * 2
    return out


def window_of(cfg: TrainConfig, model_config: Mapping[str, Any]) -> dict[str, int]:
    """The engine window geometry of the config's mode."""
    return dict(model_config["window"][cfg.mode])


def window_shape_for(cfg: TrainConfig, model_config: Mapping[str, Any]) -> tuple[int, ...]:
    """Training window ``(W_t, [Y,] X)``: the engine window length and the configured crop."""
    w_t = int(cfg.training.get("window_frames") or window_of(cfg, model_config)["frames"])
    linescan = StreamKind.from_model_kind(cfg.kind).is_linescan
    crop = cfg.training.get("crop", [128] if linescan else [64, 128])
    return (w_t, *[int(c) for c in crop])


def loss_mask_frames(cfg: TrainConfig, model_config: Mapping[str, Any]) -> tuple[int, int]:
    """Frames at the start/end of a training window excluded from the loss.

    Explicit ``training.loss_mask_frames`` wins; otherwise half of the engine window's margins.
    The low-latency geometry keeps frames close to the end of the window (small right
    margin), so the network learns to predict with little future context.
    """
    if "loss_mask_frames" in cfg.training:
        first, last = cfg.training["loss_mask_frames"]
        return int(first), int(last)
    window = window_of(cfg, model_config)
    return int(window.get("margin_left", 0)) // 2, int(window.get("margin_right", 0)) // 2


def separation(cfg: TrainConfig) -> tuple[float, float] | None:
    """``training.loss.separation`` (``{"w0": 10, "sigma_px": 5}``: Ronneberger et al.'s
    weights on the background between close events, :mod:`offline.separation`) as
    ``(w0, sigma_px)``, or ``None``."""
    spec = cfg.training.get("loss", {}).get("separation")
    if spec is None:
        return None
    unknown = set(spec) - {"w0", "sigma_px"}
    if unknown:
        raise ValueError(f"training.loss.separation: unknown keys {sorted(unknown)} "
                         "(expected w0, sigma_px)")
    w0, sigma_px = float(spec.get("w0", 10.0)), float(spec.get("sigma_px", 5.0))
    check_parameters(w0, sigma_px)  # at start-up, not at the first batch
    return w0, sigma_px


def build_stream(cfg: TrainConfig, model_config: dict[str, Any], split: str = "train") -> training_windows.WindowStream:
    """The training batches (or fixed validation batches for ``split="val"``): from the
    simulator, or from the labelled recordings of ``cfg.data["folder"]`` when given."""
    source = training_source(cfg, split)
    aug = None
    if split == "train" and cfg.augmentation.get("enabled", True):
        aug = augmentation.Augmentation(**{k: (tuple(v) if isinstance(v, list) else v)
                                       for k, v in cfg.augmentation.items() if k != "enabled"})
    sampler = training_windows.WindowSampler(window_shape=window_shape_for(cfg, model_config),
                                     model_config=model_config, augmentation=aug,
                                     windows_per_recording=int(cfg.training.get("windows_per_recording", 8)),
                                     event_sampling=str(cfg.training.get("event_sampling", "pixel")),
                                     separation=separation(cfg) if split == "train" else None)
    return training_windows.WindowStream(source, sampler, batch_size=int(cfg.training.get("batch_size", 8)),
                                 seed=cfg.seed + (0 if split == "train" else 1),
                                 pool_recordings=int(cfg.training.get("pool_recordings", 2)))


def training_source(cfg: TrainConfig, split: str = "train") -> Any:
    """:class:`~offline.datasets.FolderSource` for ``data.folder``, else the simulator."""
    folder = cfg.data.get("folder")
    if not folder:
        return datasets.SimulatedSource(kind=cfg.kind, split=split, seed=cfg.seed,
                                        params=cfg.simulation.get("params", {}),
                                        randomize=cfg.simulation.get("randomize", {}))
    calibration = cfg.model.get("calibration", {})  # the model's nominal calibration by default
    source = datasets.FolderSource(
        folder, split=split, seed=cfg.seed, val_fraction=float(cfg.data.get("val_fraction", 0.2)),
        pixel_um=float(cfg.data.get("pixel_um", calibration.get("pixel_um", 0.2))),
        dt_ms=float(cfg.data.get("dt_ms", calibration.get("dt_ms", 6.8))))
    want = StreamKind.from_model_kind(cfg.kind)
    wrong = [rec.name for rec in source.recordings if rec.stream_kind is not want]
    if wrong:
        raise ValueError(f"config {cfg.name!r} trains a {cfg.kind} model, but {folder} holds "
                         f"recordings of another kind: {wrong[:5]}")
    log.info("training on %d labelled recordings of %s (%s split)", len(source.recordings), folder, split)
    return source


def pick_device(requested: str | None = None) -> str:
    import torch

    if requested:
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


class Trainer:
    """Owns the model, optimizer, data stream, loss, checkpoints and logs of one run."""

    def __init__(self, cfg: TrainConfig, out_dir: str | Path | None = None, device: str | None = None) -> None:
        import torch

        from engine.models.unet import UNet, UNetConfig
        from offline.losses import SegmentationLoss

        self.cfg = cfg
        self.out = Path(out_dir or cfg.out)
        self.run_dir = self.out / "training"
        self.device = pick_device(device)
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed % 2**32)
        torch.use_deterministic_algorithms(True, warn_only=True)
        if self.device == "cpu" and cfg.training.get("threads"):
            torch.set_num_threads(int(cfg.training["threads"]))
        self.model_config = model_config_for(cfg)
        arch = UNetConfig.from_dict(self.model_config["architecture"])
        self.model_config["architecture"] = arch.to_dict()
        self.model = UNet(arch).to(self.device)
        t = cfg.training
        if t.get("init_from"):
            self._init_from(Path(t["init_from"]), arch)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=float(t.get("lr", 1e-3)),
                                          weight_decay=float(t.get("weight_decay", 0.0)))
        self.steps = int(t.get("steps", 1000))
        loss_cfg = t.get("loss", {})
        self.loss_fn = SegmentationLoss(lovasz_weight=loss_cfg.get("lovasz_weight", 1.0),
                                        ce_weight=loss_cfg.get("ce_weight", 1.0),
                                        class_weights=loss_cfg.get("class_weights"),
                                        mask_frames=loss_mask_frames(cfg, self.model_config))
        self.stream = build_stream(cfg, self.model_config, "train")
        self.teacher, self.distillation = self._teacher(t.get("distillation"), arch)
        self.step = 0
        self.history: list[dict[str, float]] = []

    def _init_from(self, model_path: Path, architecture: Any) -> None:
        """Start from the weights of the model directory ``model_path`` (fine-tuning), loaded
        and checked as the engine loads a model; its architecture must be this config's."""
        from engine.models.model_dir import ModelDir

        start = ModelDir.load(model_path)
        if start.config.architecture != architecture:
            got, want = start.config.architecture.to_dict(), architecture.to_dict()
            differ = ", ".join(f"{k} {got.get(k)} instead of {want.get(k)}"
                               for k in want if got.get(k) != want.get(k))
            raise ValueError(f"training.init_from: {model_path} does not fit this "
                             f"architecture ({differ})")
        self.model.load_state_dict(start.build_network().state_dict())
        log.info("%s starts from the weights of %s", self.cfg.name, model_path)

    def _teacher(self, spec: Mapping[str, Any] | None,
                 architecture: Any) -> tuple[Any, dict[str, float]]:
        """The frozen teacher network of ``training.distillation`` (``teacher``: a model
        directory; ``weight`` of the distillation term, the segmentation loss getting
        ``1 − weight``; ``temperature``), or ``(None, {})`` without one."""
        if not spec:
            return None, {}
        from engine.models.model_dir import ModelDir

        model = ModelDir.load(spec["teacher"])
        taught = (model.config.architecture.ndim, model.config.architecture.n_classes)
        if taught != (architecture.ndim, architecture.n_classes):
            raise ValueError(f"training.distillation: the teacher {spec['teacher']} has "
                             f"{taught[0]}-D input and {taught[1]} classes, the student "
                             f"{architecture.ndim}-D and {architecture.n_classes}")
        teacher = model.build_network().to(self.device)
        for parameter in teacher.parameters():
            parameter.requires_grad_(False)
        settings = {"weight": float(spec.get("weight", 0.5)),
                    "temperature": float(spec.get("temperature", 2.0))}
        if not 0.0 <= settings["weight"] <= 1.0 or settings["temperature"] <= 0:
            raise ValueError(f"training.distillation: weight must lie in [0, 1] and temperature "
                             f"be > 0, got {settings}")
        log.info("%s learns from the teacher %s (%s)", self.cfg.name, spec["teacher"], settings)
        return teacher.eval(), settings

    # ------------------------------------------------------------------ schedule / step

    def learning_rate(self, step: int) -> float:
        """Linear warm-up then cosine decay to ``lr_min``."""
        t = self.cfg.training
        lr, lr_min = float(t.get("lr", 1e-3)), float(t.get("lr_min", 1e-5))
        warmup = int(t.get("warmup_steps", 50))
        if step < warmup:
            return lr * (step + 1) / warmup
        frac = (step - warmup) / max(1, self.steps - warmup)
        return float(lr_min + 0.5 * (lr - lr_min) * (1 + np.cos(np.pi * min(frac, 1.0))))

    def train_step(self, step: int) -> float:
        import torch

        x, y, *w = self.stream.batch(step)
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate(step)
        self.model.train()
        inputs, labels = torch.from_numpy(x).to(self.device), torch.from_numpy(y).to(self.device)
        weights = torch.from_numpy(w[0]).to(self.device) if w else None
        logits = self.model(inputs)
        loss = self.loss_fn(logits, labels, weights)
        if self.teacher is not None:
            from offline.losses import distillation_loss

            with torch.no_grad():
                teacher_logits = self.teacher(inputs)
            weight = self.distillation["weight"]
            loss = (1.0 - weight) * loss + weight * distillation_loss(
                logits, teacher_logits, labels, self.distillation["temperature"],
                mask_frames=self.loss_fn.mask_frames, pixel_weights=weights)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach().cpu())

    # ------------------------------------------------------------------ checkpoints

    def save_checkpoint(self) -> Path:
        import torch
        from safetensors.torch import save_file

        self.run_dir.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()},
                  str(self.run_dir / "checkpoint.safetensors"))
        torch.save(self.optimizer.state_dict(), self.run_dir / "optimizer.pt")
        state = {"step": self.step, "history": self.history, "seed": self.cfg.seed}
        (self.run_dir / "checkpoint.json").write_text(json.dumps(state))
        return self.run_dir

    def resume(self) -> bool:
        """Load the last checkpoint of this run, if any; returns whether one was loaded."""
        import torch
        from safetensors.torch import load_file

        state_path = self.run_dir / "checkpoint.json"
        if not state_path.exists():
            return False
        self.model.load_state_dict(load_file(str(self.run_dir / "checkpoint.safetensors"), device=self.device))
        self.optimizer.load_state_dict(torch.load(self.run_dir / "optimizer.pt", weights_only=True,
                                                  map_location=self.device))
        state = json.loads(state_path.read_text())
        self.step, self.history = int(state["step"]), list(state["history"])
        log.info("resumed %s at step %d", self.cfg.name, self.step)
        return True

    # ------------------------------------------------------------------ logs

    def write_logs(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "log.json").write_text(json.dumps(self.history, indent=1))
        if not self.history:
            return
        with open(self.run_dir / "log.csv", "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(self.history[-1].keys()))
            writer.writeheader()
            writer.writerows(self.history)

    # ------------------------------------------------------------------ main loop

    def fit(self, steps: int | None = None) -> dict[str, Any]:
        """Train until ``steps`` (default: the config's), checkpointing and logging."""
        from tqdm import tqdm

        if steps is not None:
            self.steps = int(steps)
        every_log = int(self.cfg.training.get("log_every", 10))
        every_ckpt = int(self.cfg.training.get("checkpoint_every", 100))
        start, losses, t0 = self.step, [], time.monotonic()
        bar = tqdm(range(start, self.steps), initial=start, total=self.steps, desc=self.cfg.name,
                   mininterval=5.0, disable=None)
        for step in bar:
            losses.append(self.train_step(step))
            self.step = step + 1
            if self.step % every_log == 0 or self.step == self.steps:
                row = {"step": self.step, "loss": float(np.mean(losses)),
                       "lr": self.learning_rate(step), "elapsed_s": time.monotonic() - t0}
                self.history.append(row)
                bar.set_postfix(loss=f"{row['loss']:.4f}")
                losses = []
                if self.step % (5 * every_log) == 0:
                    log.info("%s step %d/%d loss %.4f (%.0f s)", self.cfg.name, self.step,
                             self.steps, row["loss"], row["elapsed_s"])
            if self.step % every_ckpt == 0 or self.step == self.steps:
                self.save_checkpoint()
                self.write_logs()
        return {"steps": self.steps, "final_loss": self.history[-1]["loss"] if self.history else None,
                "train_seconds": time.monotonic() - t0}

    def export_model_dir(self, extra_metrics: Mapping[str, Any] | None = None) -> Path:
        """Write the engine model directory (weights.safetensors, config.json, thresholds.json,
        metrics.json) into ``self.out``; existing tuned thresholds are kept."""
        from engine.models.model_dir import ModelConfig, ModelDir

        self.model.eval()
        config = dict(self.model_config)
        config["extra"] = {**config.get("extra", {}), "trained_by": {
            "command": f"castream train offline/configs/{self.cfg.name}.json",
            "seed": self.cfg.seed, "steps": self.step,
            **({"init_from": str(self.cfg.training["init_from"])}
               if self.cfg.training.get("init_from") else {}),
            **({"distillation": dict(self.cfg.training["distillation"])}
               if self.cfg.training.get("distillation") else {}),
            **({"data": self.cfg.data} if self.cfg.data.get("folder") else {})}}
        metrics = {"training": {"config": self.cfg.name, "seed": self.cfg.seed, "steps": self.step,
                                "final_loss": self.history[-1]["loss"] if self.history else None},
                   **(extra_metrics or {})}
        thresholds_path = self.out / "thresholds.json"
        thresholds = (json.loads(thresholds_path.read_text()) if thresholds_path.exists()
                      else dict(self.cfg.training.get("thresholds", {"foreground": 0.5})))
        model = ModelDir.from_network(self.model.cpu(), ModelConfig.from_dict(config), thresholds,
                                      metrics)
        model.save(self.out)
        self.model.to(self.device)
        return self.out


def train(config_path: str | Path, out_dir: str | Path | None = None, steps: int | None = None,
          resume: bool = False, device: str | None = None, data: str | Path | None = None,
          pixel_um: float | None = None, dt_ms: float | None = None) -> Path:
    """Train the model of ``config_path`` and write its model directory; returns its path.

    ``data``: a folder of labelled recordings (Dotti convention) to train on instead of the
    simulator (overrides the config's ``data.folder``); ``pixel_um``/``dt_ms`` its calibration
    (default: the config's ``data`` entries, else the model's nominal calibration).
    """
    cfg = TrainConfig.load(config_path)
    if data is not None:
        cfg.data = {**cfg.data, "folder": str(data)}
    for key, value in (("pixel_um", pixel_um), ("dt_ms", dt_ms)):
        if value is not None:
            cfg.data = {**cfg.data, key: float(value)}
    trainer = Trainer(cfg, out_dir=out_dir, device=device)
    if resume:
        trainer.resume()
    summary = trainer.fit(steps)
    log.info("trained %s: %s", cfg.name, summary)
    return trainer.export_model_dir({"training_summary": summary})
