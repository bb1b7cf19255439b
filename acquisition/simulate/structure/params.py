"""Parameters of the simulated structure microscope (Z-disc marker images), units in names."""

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


@dataclass(frozen=True)
class StructureFieldParams:
    """One simulated field of view.

    ``z_slices = 0`` gives a 2-D image ``(Y, X)``; ``z_slices = n`` a z-stack ``(Z, Y, X)``
    at ``z_step_um``. Object counts are per field; cells are placed without overlap but may
    touch (``touching_probability``: a cell is placed against an earlier one).
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
    style: RenderStyle = field(default_factory=RenderStyle)

    def with_(self, **changes) -> StructureFieldParams:
        return replace(self, **changes)
