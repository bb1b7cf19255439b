"""Held-out check on real spark shapes: recorded sparks embedded in development line-scans.

``python -m offline.experiments.real_shapes --n 12`` builds ``--n`` line-scans whose sparks are
the ten *recorded* Ca²⁺ sparks of SparkMaster 2's spark library (4 in focus, 3 mid-focus, 3 out
of focus; ``../shared/data/sm2_spark_library.mat``, read at run time, never copied into this
repository), on the development generator's cells and detector (:mod:`offline.devsim`: bands,
nucleus, fixed-pattern noise, laser flicker, drift, bleaching, shot and read noise), and prints
``castream evaluate``'s tables for each ``--detector``. Neither castream's simulator nor its
development generator made these shapes, so this is the closest check here to the independent
benchmark of real spark shapes the project is judged on.

**Held out**: no threshold, model or parameter is chosen on it (``../shared/data/README.md``);
it is run to report, once per change worth reporting, never to select.

Construction (written here, not taken from SparkMaster's generator):

* **templates**: the library stores F/F0 with rows = time and columns = space, at an assumed 2
  ms/line and 0.12 µm/px (the data README). Each becomes ΔF/F0 = F/F0 − 1, smoothed (Gaussian,
  ``SMOOTH_PX``) and tapered to 0 outside its dilated mask (the out-of-focus crops are noisy
  real data, and their rims would otherwise carry that noise into every copy); negative values
  are set to 0;
* **recordings**: calibration drawn from the benchmark's ranges (0.10–0.20 µm/px, 1–2 ms/line),
  the rest (cell, detector, resting SNR 1.5–10, duration) as the development generator draws
  it, with its own events switched off (``empty``); sparks at ``RATE_PER_100UM_S`` at the
  cell's release sites (z-lines, outside the nucleus), each a random template resampled to the
  recording's calibration (its size in µm and ms kept) and scaled by a factor in
  ``AMPLITUDE_SCALE``, never overlapping an earlier one;
* **ground truth**: the development generator's (:func:`offline.devsim.truth.build_truth`) on
  the embedded templates: masks at 20 % of each spark's own peak, parameters by the DESIGN.md
  definitions on its noise-free ΔF/F0; the subtype (``real_in``, ``real_mid``, ``real_out``)
  gives recall per focus.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import io as scipy_io
from scipy import ndimage

from offline.datasets import LabeledRecording
from offline.devsim.calibration import draw_setup
from offline.devsim.cell import linescan_layout
from offline.devsim.detector import acquire
from offline.devsim.generate import dev_params
from offline.devsim.render import Contribution
from offline.devsim.truth import build_truth
from offline.experiments import heldout
from offline.experiments.heldout import SHARED_DATA

log = logging.getLogger(__name__)

LIBRARY = SHARED_DATA / "sm2_spark_library.mat"
#: the library's assumed calibration (``../shared/data/README.md``)
LIBRARY_DT_MS = 2.0
LIBRARY_PIXEL_UM = 0.12
SMOOTH_PX = 1.0
TAPER_PX = 3
#: the benchmark's calibration ranges
PIXEL_UM = (0.10, 0.20)
DT_MS = (1.0, 2.0)
RATE_PER_100UM_S = 8.0
AMPLITUDE_SCALE = (0.5, 1.0)
#: seeds of these recordings' RNG stream (apart from every other generator's)
STREAM = 0x5EA1
FOCUS = {"sparksIn": "real_in", "sparksMid": "real_mid", "sparksOut": "real_out"}


@dataclass(frozen=True)
class Template:
    """One recorded spark as noise-free ΔF/F0, rows time, columns space, at the library's
    calibration."""

    subtype: str
    dff0: np.ndarray


def load_templates(path: Path = LIBRARY) -> list[Template]:
    """The library's sparks, denoised and tapered (module docstring)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: this check needs ../shared/data "
                                "(SparkMaster 2's spark library)")
    mat = scipy_io.loadmat(path)
    templates = []
    for key, subtype in FOCUS.items():
        masks = mat["masks" + key[len("sparks"):]].ravel()
        for f_f0, mask in zip(mat[key].ravel(), masks, strict=True):
            dff0 = ndimage.gaussian_filter(np.asarray(f_f0, np.float64) - 1.0, SMOOTH_PX)
            grown = ndimage.binary_dilation(np.asarray(mask, bool), iterations=TAPER_PX)
            taper = ndimage.gaussian_filter(grown.astype(np.float64), TAPER_PX / 2)
            templates.append(Template(subtype, np.clip(dff0 * taper, 0.0, None)))
    return templates


def resample(template: Template, dt_ms: float, pixel_um: float) -> np.ndarray:
    """``template`` at another calibration (its duration and width kept)."""
    zoom = (LIBRARY_DT_MS / dt_ms, LIBRARY_PIXEL_UM / pixel_um)
    return np.clip(ndimage.zoom(template.dff0, zoom, order=1), 0.0, None).astype(np.float32)


def real_shapes_linescan(seed: int, templates: list[Template]) -> LabeledRecording:
    """One line-scan (module docstring) from ``seed``."""
    rng = np.random.default_rng([seed, STREAM])
    params = dev_params("linescan", {"empty": True})
    setup = draw_setup(params, rng)
    pixel_um = float(np.exp(rng.uniform(*np.log(PIXEL_UM))))
    dt_ms = float(np.exp(rng.uniform(*np.log(DT_MS))))
    n_t = int(round(setup.shape[0] * setup.dt_ms / dt_ms))
    setup = dataclasses.replace(setup, pixel_um=pixel_um, dt_ms=dt_ms,
                                shape=(n_t, setup.shape[1]))
    layout = linescan_layout(setup.shape[1], pixel_um, params, rng)
    sites = layout.sites_um[:, 1] if len(layout.sites_um) else np.array([])
    length_um = layout.cytosol_extent(pixel_um)
    n_sparks = rng.poisson(RATE_PER_100UM_S * length_um / 100.0 * n_t * dt_ms / 1000.0)
    occupied = np.zeros(setup.shape, bool)
    contributions = []
    for _ in range(int(n_sparks) if sites.size else 0):
        template = templates[int(rng.integers(len(templates)))]
        values = resample(template, dt_ms, pixel_um) * rng.uniform(*AMPLITUDE_SCALE)
        peak = np.unravel_index(int(np.argmax(values)), values.shape)
        x_peak = int(round(float(rng.choice(sites)) / pixel_um))
        t_peak = int(rng.integers(values.shape[0], max(values.shape[0] + 1,
                                                       n_t - values.shape[0])))
        origin = (t_peak - peak[0], x_peak - peak[1])
        if (origin[0] < 0 or origin[1] < 0 or origin[0] + values.shape[0] > n_t
                or origin[1] + values.shape[1] > setup.shape[1]):
            continue
        box = tuple(slice(o, o + n) for o, n in zip(origin, values.shape, strict=True))
        if occupied[box].any():
            continue
        occupied[box] = True
        contributions.append(Contribution("spark", template.subtype, origin, values))
    name = f"real-shapes-{seed}"
    truth = build_truth(contributions, setup.shape, dt_ms, pixel_um, name,
                        params.truth_fraction_of_peak, params.ignore_below_dff0)
    data = acquire(truth.clean_dff0, layout, setup, rng)
    return LabeledRecording(
        data=data, class_mask=truth.class_mask, instance_mask=truth.instance_mask,
        pixel_um=pixel_um, dt_ms=dt_ms, axes=setup.stream_kind.axes,
        blank=setup.detector.offset_counts, events=truth.events, name=name, cell=name)


def main(argv: list[str] | None = None) -> int:
    from acquisition.stream_kind import StreamKind
    from engine.models.model_dir import default_model_path

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    heldout.add_arguments(parser, "line-scans", "the accurate line-scan model")
    parser.add_argument("--library", type=Path, default=LIBRARY,
                        help=f"SparkMaster 2's spark library (default {LIBRARY})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log.setLevel(logging.INFO)
    templates = heldout.read_material(load_templates, args.library, log)
    if templates is None:
        return 1
    recordings = [real_shapes_linescan(args.seed + i, templates) for i in range(args.n)]
    n_sparks = sum(len(r.events) for r in recordings)
    log.info("%d line-scans, %d recorded sparks embedded (%s, …)", args.n, n_sparks,
             ", ".join(f"{r.pixel_um:.3f} µm / {r.dt_ms:.2f} ms" for r in recordings[:3]))
    model = args.model or default_model_path(StreamKind.LINESCAN, "accurate")
    heldout.log_tables(recordings, model, args.detector, "real spark shapes", log,
                        args.blank)
    return 0

if __name__ == "__main__":
    raise SystemExit(main())
