"""Offline analysis of translations: spectrum statistics, LFD, spectral-profile fitting and plots.

Torch-free (numpy + OpenCV), but not part of the runtime: ``i2i-run`` only loads a fitted profile
and applies it (``i2i.runtime.spectral``); fitting and measuring happen here, driven by
``i2i-eval spectrum|profile`` and the demo.

``spectra``  SpectrumStats (running per-set means), LFD, radial profiles
``profile``  ProfileConfig and the closed-form ``estimate_profile``
``plots``    spectra.png / radial.png
``folders``  folders of images → stats, paired PSNR, the spectrum report, ``fit_profile``
"""

from i2i.analysis.folders import (
    fit_profile,
    folder_stats,
    images_by_stem,
    iter_images,
    paired_psnr,
    paired_stems,
    refined_stats,
    spectrum_report,
)
from i2i.analysis.plots import plot_radial, plot_spectra
from i2i.analysis.profile import ProfileConfig, estimate_profile
from i2i.analysis.spectra import (
    LFD_SCALE,
    SpectrumStats,
    lfd,
    lfd_from_means,
    log_magnitude,
    normalised_log_magnitude,
    phase,
    radial_index,
    radial_profile,
    ring_radius,
)

__all__ = [
    "LFD_SCALE",
    "ProfileConfig",
    "SpectrumStats",
    "estimate_profile",
    "fit_profile",
    "folder_stats",
    "images_by_stem",
    "iter_images",
    "lfd",
    "lfd_from_means",
    "log_magnitude",
    "normalised_log_magnitude",
    "paired_psnr",
    "paired_stems",
    "phase",
    "plot_radial",
    "plot_spectra",
    "radial_index",
    "radial_profile",
    "refined_stats",
    "ring_radius",
    "spectrum_report",
]
