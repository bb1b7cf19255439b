"""Parameters of the simulated structure microscope (Z-disc marker images), units in names.

Randomized rendering (domain randomization, issue 13's variant gap)
--------------------------------------------------------------------
:meth:`RenderStyle.randomized` draws one field's rendering choices from
:data:`RANDOMIZED_RANGES`, for *training* fields only. Every range is centred on the default
(about ±25 %, wider for the photon level) and kept to what a confocal or spinning-disc image
of an alpha-actinin stain plausibly shows; each range stops short of the value
:meth:`RenderStyle.variant` uses, so the variant stays a generator no model has seen (its
scalar choices lie outside every range, and none of its ranges is reproduced). Uniform draws:

======================  =================  ===========  ==========================================
choice                  randomized range   variant      rationale / source
======================  =================  ===========  ==========================================
``psf_sigma_um``        0.09–0.145         0.16         FWHM 0.21–0.34 µm, ±25 % of the default
                                                        0.28 µm (theory at NA 1.2–1.4, 520 nm:
                                                        0.51 λ / NA ≈ 0.19–0.22 µm widefield;
                                                        measured PSFs are wider: aberrations,
                                                        sampling; Pawley 2006, Handbook of
                                                        Biological Confocal Microscopy)
``psf_halo_fraction``   0 (half the        0.25         out-of-focus haze of a thick cell or an
                        fields), else                   open pinhole; kept ≤ 0.15 of the energy
                        0.03–0.15
``psf_halo_sigma_um``   0.4–1.0            0.6 (with    the haze's width (a few Airy radii)
                                           0.25 halo)
``disc_width_um``       0.07–0.125         0.14         Z-disc thickness by EM: 30–50 nm (fast
                                                        fish muscle) to > 100 nm (cardiac, slow;
                                                        Luther 2009, J Muscle Res Cell Motil);
                                                        ±30 % of the default 0.1 µm
myofibril spacing lo    0.9–1.1            0.8          myofibril diameter ≈ 1 µm, spacing 1–1.5
myofibril spacing hi    1.3–1.7            1.8          µm in cardiomyocytes (default's range)
``punctum_sigma_um``    0.11–0.185         0.2          ±25 % of the default (z-bodies, Sanger
                                                        et al. 2005: sub-µm alpha-actinin dots)
``puncta_density``      0.9–1.6 /µm²       0.8          ±30 % of the default
photons at unit signal  90–600 per field   60–200       dim to bright stains (default 150–400)
read noise (SD)         1.5–6 counts       4–9          sCMOS ≈ 1.5, EMCCD/CCD up to 6
offset (centre, ±10)    60–150 counts      40–200       camera offsets of 100 ± 50
``illumination_var.``   0.15–0.45          0.5          flat-field residuals of 15–45 %
``disc_jitter_um``      0.04–0.12          0.15         ±50 % of the default misregistration
======================  =================  ===========  ==========================================

The photon level and read noise are drawn once per field (the default draws them per field
from its own range too). ``castream train-cells --randomize-rendering`` uses this for the
training fields of the pattern net and of the heads; validation, test and variant fields
keep their own generators.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

CellSource = Literal["adult", "neonatal", "ipsc"]
CELL_SOURCES: tuple[str, ...] = ("adult", "neonatal", "ipsc")
#: kinds of objects in a field; only ``cardiomyocyte`` is a true cell
OBJECT_KINDS: tuple[str, ...] = ("cardiomyocyte", "debris", "fibroblast", "out_of_focus", "dead")
#: local pattern classes of the pattern map (Gerbin et al. 2021's six patch classes)
PATTERN_CLASSES: tuple[str, ...] = ("background", "diffuse", "fibres", "disorganized_puncta",
                                    "organized_puncta", "zdiscs")


@dataclass(frozen=True)
class RenderStyle:
    """Rendering choices; :meth:`variant` gives a second, independent-looking generator.

    The variant changes the PSF shape (Gaussian core + wide halo), the noise level and the
    pattern statistics (disc width, myofibril spacing, punctum size and density), so that a
    model validated on it is not judged on the renderer it was trained with.
    """

    name: str = "default"
    psf_sigma_um: float = 0.12          # Gaussian PSF (FWHM ≈ 0.28 µm, confocal, NA 1.3–1.4)
    psf_halo_fraction: float = 0.0      # energy in a wide halo (variant: out-of-focus haze)
    psf_halo_sigma_um: float = 0.6
    disc_width_um: float = 0.10         # Z-disc thickness along the myofibril (Gaussian SD)
    myofibril_spacing_um: tuple[float, float] = (1.0, 1.5)
    punctum_sigma_um: float = 0.15
    puncta_density_per_um2: float = 1.2
    photons_per_unit: tuple[float, float] = (150.0, 400.0)  # photons at unit signal
    read_noise_counts: tuple[float, float] = (2.0, 5.0)
    offset_counts: tuple[float, float] = (90.0, 110.0)
    illumination_variation: float = 0.3  # peak-to-peak fraction of the smooth illumination
    disc_jitter_um: float = 0.08        # smooth misregistration of discs between myofibrils

    @classmethod
    def variant(cls) -> RenderStyle:
        """The second generator's choices (never trained on)."""
        return cls(name="variant", psf_sigma_um=0.16, psf_halo_fraction=0.25,
                   disc_width_um=0.14, myofibril_spacing_um=(0.8, 1.8), punctum_sigma_um=0.2,
                   puncta_density_per_um2=0.8, photons_per_unit=(60.0, 200.0),
                   read_noise_counts=(4.0, 9.0), offset_counts=(40.0, 200.0),
                   illumination_variation=0.5, disc_jitter_um=0.15)

    @classmethod
    def randomized(cls, rng) -> RenderStyle:
        """One training field's rendering choices drawn from :data:`RANDOMIZED_RANGES`
        (domain randomization around the default; never the variant's choices)."""
        return _randomized(rng)


#: ranges of :meth:`RenderStyle.randomized` (see the module docstring for their sources)
RANDOMIZED_RANGES: dict[str, tuple[float, float]] = {
    "psf_sigma_um": (0.09, 0.145),
    "psf_halo_fraction": (0.03, 0.15),      # drawn for half the fields, 0 for the others
    "psf_halo_sigma_um": (0.4, 1.0),
    "disc_width_um": (0.07, 0.125),
    "myofibril_spacing_lo_um": (0.9, 1.1),
    "myofibril_spacing_hi_um": (1.3, 1.7),
    "punctum_sigma_um": (0.11, 0.185),
    "puncta_density_per_um2": (0.9, 1.6),
    "photons_per_unit": (90.0, 600.0),
    "read_noise_counts": (1.5, 6.0),
    "offset_centre_counts": (60.0, 150.0),
    "illumination_variation": (0.15, 0.45),
    "disc_jitter_um": (0.04, 0.12),
}
HALO_PROBABILITY = 0.5


def _randomized(rng) -> RenderStyle:
    def draw(name: str) -> float:
        return float(rng.uniform(*RANDOMIZED_RANGES[name]))

    halo = draw("psf_halo_fraction") if rng.random() < HALO_PROBABILITY else 0.0
    photons, read_noise = draw("photons_per_unit"), draw("read_noise_counts")
    offset = draw("offset_centre_counts")
    return RenderStyle(
        name="randomized", psf_sigma_um=draw("psf_sigma_um"), psf_halo_fraction=halo,
        psf_halo_sigma_um=draw("psf_halo_sigma_um"), disc_width_um=draw("disc_width_um"),
        myofibril_spacing_um=(draw("myofibril_spacing_lo_um"),
                              draw("myofibril_spacing_hi_um")),
        punctum_sigma_um=draw("punctum_sigma_um"),
        puncta_density_per_um2=draw("puncta_density_per_um2"),
        photons_per_unit=(photons, photons), read_noise_counts=(read_noise, read_noise),
        offset_counts=(offset - 10.0, offset + 10.0),
        illumination_variation=draw("illumination_variation"),
        disc_jitter_um=draw("disc_jitter_um"))


@dataclass(frozen=True)
class StructureFieldParams:
    """One simulated field of view.

    ``z_slices = 0`` gives a 2-D image ``(Y, X)``; ``z_slices = n`` a z-stack ``(Z, Y, X)``
    at ``z_step_um``. Object counts are per field; cells are placed without overlap but may
    touch (``touching_probability``: a cell is placed against an earlier one).
    ``depth_clutter_probability > 0`` puts clutter above or below cells (:mod:`.clutter`;
    off by default, and then nothing of it is drawn).
    """

    shape_px: tuple[int, int] = (768, 768)
    pixel_um: float = 0.15
    n_cardiomyocytes: int = 4
    source_probabilities: dict[str, float] = field(
        default_factory=lambda: {"adult": 0.3, "neonatal": 0.35, "ipsc": 0.35})
    n_debris: int = 3
    n_fibroblasts: int = 1
    n_out_of_focus: int = 1
    n_dead: int = 1
    touching_probability: float = 0.3
    z_slices: int = 0
    z_step_um: float = 0.5
    rater_noise_sd: float = 0.3         # each of two raters' error on the 1–5 scale
    #: probability that a cardiomyocyte has clutter (a fibroblast-like process, a neighbour's
    #: edge or debris) in a thin layer above or below it (:mod:`.clutter`); 0 = off
    depth_clutter_probability: float = 0.0
    style: RenderStyle = field(default_factory=RenderStyle)

    def with_(self, **changes) -> StructureFieldParams:
        return replace(self, **changes)
