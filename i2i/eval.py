"""``i2i-eval``: image-quality metrics between folders (torch-free, except ssim, fid and kid).

``psnr``      paired PSNR by file name.
``ssim``      paired SSIM by file name (torch, imported inside the command).
``fid|kid``   Frechet / Kernel Inception Distance between two folders (torch; Inception weights from
              a local file, ``--inception-weights``; see ``i2i.train.metrics``).
``spectrum``  LFD (log frequency distance, STIG) between real and generated images, plus PNG plots
              of the mean log-spectra and the radial power profiles; ``--refine`` adds the refined set.
``profile``   estimate a spectral filter profile (.npz) from real vs generated images (closed form).
``temporal``  temporal stability of a translated video: the warping error (Lai et al. 2018) against the
              input's motion, and a stabilised run's fidelity (``i2i.analysis.temporal``).
The commands are thin: the arithmetic and the plots (drawn with OpenCV, so nothing beyond the
runtime's dependencies) live in ``i2i.analysis``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from i2i import __version__
from i2i._cli import Group, debug_option, hw_option
from i2i._files import write_text
from i2i.errors import I2IError


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@debug_option
def main() -> None:
    """Evaluate translations.

    \b
    Examples:
      i2i-eval psnr data/demo/test/B out/translated/
      i2i-eval ssim data/demo/test/B out/translated/
      i2i-eval fid data/demo/test/B out/translated/ --inception-weights pt_inception-2015-12-05-6726825d.pth
      i2i-eval spectrum data/demo/test/B out/translated/ --out spectrum/
      i2i-eval profile data/demo/train/B out/train_translated/ -o profile.npz
      i2i-eval spectrum data/demo/test/B out/translated/ --refine profile.npz
      i2i-eval temporal clip.mp4 translated.mp4 --stabilized stabilized.mp4 --plot warp.png
    """


@main.command("psnr")
@click.argument("reference_dir", type=click.Path(path_type=Path))
@click.argument("test_dir", type=click.Path(path_type=Path))
@click.option(
    "--aligned/--no-aligned",
    default=None,
    help="REFERENCE_DIR holds A|B pair images (a reference test/ folder): score against the target half "
    "[default: detected, for a reference twice as wide as its test image].",
)
@click.option(
    "--direction",
    type=click.Choice(["AtoB", "BtoA"]),
    default="AtoB",
    show_default=True,
    help="Which half of an A|B pair is the target: B (AtoB) or A (BtoA).",
)
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None)
def psnr_command(
    reference_dir: Path, test_dir: Path, aligned: bool | None, direction: str, json_path: Path | None
) -> None:
    """PSNR (8-bit, dB) between images of REFERENCE_DIR and TEST_DIR with the same file stem.

    A reference test folder of A|B pairs (as i2i-run --aligned translates it) is scored against
    each pair's target half, detected or with --aligned; the run's results page (index.html) shows
    the same numbers per image."""
    from i2i.analysis.folders import paired_psnr

    result = paired_psnr(reference_dir, test_dir, aligned, direction)
    if result["aligned_pairs"]:
        half = "right (B)" if direction == "AtoB" else "left (A)"
        click.echo(
            f"note: {result['aligned_pairs']} reference images are A|B pairs: scored against their {half} half "
            "(--no-aligned scores whole images)"
        )
    click.echo(
        f"{result['pairs']} pairs: mean PSNR {result['psnr_db_mean']:.2f} dB, min {result['psnr_db_min']:.2f} dB"
    )
    if json_path:
        write_text(json_path, json.dumps(result, indent=2), "JSON")


# --------------------------------------------------------------------------- SSIM, FID, KID (need torch)


def _import_metrics() -> Any:
    """i2i.train.metrics, imported here so that the torch-free commands never load torch."""
    try:
        import torch  # noqa: F401
    except ImportError:
        from i2i.errors import MissingDependencyError

        raise MissingDependencyError("torch", "train", "ssim, fid and kid run in torch") from None
    from i2i.train import metrics

    return metrics


@main.command("ssim")
@click.argument("reference_dir", type=click.Path(path_type=Path))
@click.argument("test_dir", type=click.Path(path_type=Path))
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None)
def ssim_command(reference_dir: Path, test_dir: Path, json_path: Path | None) -> None:
    """SSIM (Gaussian 11x11, sigma 1.5; 8-bit) between images of REFERENCE_DIR and TEST_DIR with the same stem."""
    result = _import_metrics().paired_ssim(reference_dir, test_dir)
    click.echo(f"{result['pairs']} pairs: mean SSIM {result['ssim_mean']:.4f}, min {result['ssim_min']:.4f}")
    if json_path:
        write_text(json_path, json.dumps(result, indent=2), "JSON")


def _feature_metric(metric: str, real_dir: Path, fake_dir: Path, weights: str | None, **options: Any) -> dict[str, Any]:
    metrics = _import_metrics()
    from i2i.train.loop import resolve_device
    from i2i.train.nets.inception import INPUT_SIZE, TORCHVISION_FILE, load_inception, resolve_inception_weights

    path = resolve_inception_weights(weights)  # first: a missing file is one line, before any work
    for folder in (real_dir, fake_dir):
        if not folder.is_dir():
            raise I2IError(f"not a folder: {folder}")
    device = resolve_device(options.pop("device"))
    net = load_inception(path).to(device)
    if net.variant == "torch":
        click.echo(f"note: {path.name} is torchvision's Inception ({TORCHVISION_FILE}): not comparable", err=True)
    result = metrics.folder_metric(metric, real_dir, fake_dir, net, INPUT_SIZE, device, **options)
    return {**result, "inception": str(path), "inception_variant": net.variant}


def _inception_options(func: Any) -> Any:
    for option in reversed(
        [
            click.option(
                "--inception-weights",
                type=click.Path(dir_okay=False),
                default=None,
                help="Inception-v3 weights: pytorch-fid's pt_inception-2015-12-05-6726825d.pth "
                "[default: the torch hub cache].",
            ),
            click.option("--batch-size", default=16, show_default=True, type=click.IntRange(1)),
            click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N."),
            click.option("--progress/--no-progress", default=True, show_default=True),
            click.option("--json", "json_path", type=click.Path(path_type=Path), default=None),
        ]
    ):
        func = option(func)
    return func


@main.command("fid")
@click.argument("real_dir", type=click.Path(path_type=Path))
@click.argument("fake_dir", type=click.Path(path_type=Path))
@_inception_options
def fid_command(
    real_dir: Path, fake_dir: Path, inception_weights: str | None, json_path: Path | None, **kw: Any
) -> None:
    """Frechet Inception Distance between REAL_DIR and FAKE_DIR (Heusel et al. 2017; lower is closer).

    Images of any size are resized to 299x299 (bilinear) as pytorch-fid does; the 2048-d pool3
    features of the TF FID Inception make values comparable with pytorch-fid. Use thousands of
    images: FID is biased upwards for small sets.
    """
    result = _feature_metric("fid", real_dir, fake_dir, inception_weights, **kw)
    click.echo(f"FID {result['fid']:.4f}  ({result['real_images']} real, {result['generated_images']} generated)")
    if json_path:
        write_text(json_path, json.dumps(result, indent=2), "JSON")


@main.command("kid")
@click.argument("real_dir", type=click.Path(path_type=Path))
@click.argument("fake_dir", type=click.Path(path_type=Path))
@_inception_options
@click.option("--subsets", default=100, show_default=True, type=click.IntRange(1), help="Random subsets averaged.")
@click.option("--subset-size", default=1000, show_default=True, type=click.IntRange(2), help="Images per subset.")
@click.option("--seed", default=0, show_default=True, help="Seed of the subset draws.")
def kid_command(
    real_dir: Path, fake_dir: Path, inception_weights: str | None, json_path: Path | None, **kw: Any
) -> None:
    """Kernel Inception Distance between REAL_DIR and FAKE_DIR (Binkowski et al. 2018; lower is closer).

    Unbiased MMD^2 with the cubic polynomial kernel on Inception pool3 features, mean and standard
    deviation over random subsets (capped at the smaller folder's size). Unbiased: fine for small sets.
    """
    result = _feature_metric("kid", real_dir, fake_dir, inception_weights, **kw)
    click.echo(
        f"KID {result['kid']:.6f} +- {result['kid_std']:.6f}  ({result['real_images']} real, "
        f"{result['generated_images']} generated, subsets of {result['kid_subset_size']})"
    )
    if json_path:
        write_text(json_path, json.dumps(result, indent=2), "JSON")


# --------------------------------------------------------------------------- spectra


_SIZE_HELP = "Resize every image to HxW first (changes spectra; default: none)."


@main.command("spectrum")
@click.argument("real_dir", type=click.Path(path_type=Path))
@click.argument("fake_dir", type=click.Path(path_type=Path))
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("spectrum"),
    show_default=True,
    help="Folder for spectra.png and radial.png.",
)
@click.option(
    "--refine",
    type=click.Path(path_type=Path),
    default=None,
    help="Also refine FAKE_DIR with this profile (.npz) or STIG refiner (.onnx) and compare.",
)
@hw_option("--size", default=None, help=_SIZE_HELP)
@click.option("--no-plots", is_flag=True, help="Only print the numbers.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None, help="Write the numbers as JSON.")
def spectrum_command(
    real_dir: Path,
    fake_dir: Path,
    out_dir: Path,
    refine: Path | None,
    size: tuple[int, int] | None,
    no_plots: bool,
    json_path: Path | None,
) -> None:
    """Log frequency distance (LFD) between REAL_DIR and FAKE_DIR, with spectrum plots.

    LFD = ln(sum over channels and frequencies of (R - F)^2 + 1), R and F the mean per-image
    min-max normalised log-magnitude spectra on a 0..255 scale (STIG's metric, computed in float).
    Lower is closer; 0 for identical sets. The images of both folders must share one size.
    """
    from i2i.analysis import spectrum_report

    result = spectrum_report(real_dir, fake_dir, None if no_plots else out_dir, refine, size)
    click.echo(
        f"LFD real vs generated: {result['lfd']:.4f}  ({result['real_images']} real, "
        f"{result['generated_images']} generated, {result['size'][0]}x{result['size'][1]})"
    )
    if refine is not None:
        click.echo(
            f"LFD real vs refined:   {result['lfd_refined']:.4f}  (PSNR refined vs generated: "
            f"mean {result['psnr_db_mean']:.2f} dB, min {result['psnr_db_min']:.2f} dB)"
        )
    for plot in result.get("plots", []):
        click.echo(f"  plot: {plot}")
    if json_path:
        write_text(json_path, json.dumps(result, indent=2), "JSON")


@main.command("profile")
@click.argument("real_dir", type=click.Path(path_type=Path))
@click.argument("fake_dir", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("profile.npz"),
    show_default=True,
    help="Where to write the profile (.npz).",
)
@click.option(
    "--min-psnr",
    type=float,
    default=33.0,
    show_default=True,
    help="Shrink the radial correction until refined vs generated images keep this PSNR (dB, set mean).",
)
@click.option("--max-gain", type=float, default=4.0, show_default=True, help="Largest radial gain.")
@click.option("--min-gain", type=float, default=0.25, show_default=True, help="Smallest radial gain.")
@click.option(
    "--notch-levels",
    type=click.IntRange(1, 8),
    default=3,
    show_default=True,
    help="Look for transposed-convolution peaks at multiples of 1/2^N cycles/pixel.",
)
@click.option(
    "--notch-threshold",
    type=float,
    default=0.5,
    show_default=True,
    help="A lattice bin gets a notch when it stands this far (natural log) above its ring.",
)
@click.option(
    "--notch-priority/--no-notch-priority",
    default=False,
    show_default=True,
    help="Keep the notches at full depth and shrink only the radial curve (removes a visible grid first).",
)
@hw_option("--size", default=None, help=_SIZE_HELP)
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None, help="Write the numbers as JSON.")
def profile_command(
    real_dir: Path, fake_dir: Path, output: Path, size: tuple[int, int] | None, json_path: Path | None, **fit: Any
) -> None:
    """Estimate a spectral filter profile that moves FAKE_DIR's spectra towards REAL_DIR's.

    Closed form, no training: a per-channel radial gain curve (shrunk so the images keep
    --min-psnr) plus notches at the periodic peaks of stride-2 transposed convolutions. The .npz
    works at any frame size: `i2i-run MODEL --refine profile.npz` applies it after the model, and
    `i2i-export --refine` bakes it into the graph for one frame size.
    """
    from i2i.analysis import ProfileConfig, fit_profile

    config = ProfileConfig(**fit)
    profile, report = fit_profile(real_dir, fake_dir, output, config, size, {"i2i_version": __version__})
    h, w = profile.size
    click.echo(
        f"profile: {output}  ({h}x{w}, {len(profile.notch_freq)} notches, "
        f"radial gain {profile.radial_gain.min():.2f}..{profile.radial_gain.max():.2f})"
    )
    click.echo(
        f"LFD on these images: {report['lfd_before']:.4f} -> {report['lfd_after']:.4f}; PSNR refined vs generated: "
        f"mean {report['psnr_db_mean']:.2f} dB, min {report['psnr_db_min']:.2f} dB"
    )
    if json_path:
        write_text(json_path, json.dumps({"profile": str(output), **report}, indent=2), "JSON")


# --------------------------------------------------------------------------- temporal stability


@main.command("temporal")
@click.argument("input_spec", metavar="INPUT")
@click.argument("output_spec", metavar="OUTPUT")
@click.option(
    "--stabilized",
    "--stabilised",
    "stabilized_spec",
    default=None,
    help="A stabilised run of the same input (i2i-run --stabilize): its E_warp and fidelity to OUTPUT.",
)
@click.option("--plot", "plot_path", type=click.Path(path_type=Path), default=None, help="Per-frame error PNG.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None, help="Write the report as JSON.")
@click.option("--max-frames", type=click.IntRange(min=0), default=0, help="Only the first N frames (0 = all).")
def temporal_command(
    input_spec: str,
    output_spec: str,
    stabilized_spec: str | None,
    plot_path: Path | None,
    json_path: Path | None,
    max_frames: int,
) -> None:
    """Temporal stability: the warping error of OUTPUT against the motion of INPUT.

    \b
    INPUT, OUTPUT (and --stabilized): video files, folders of frames or globs, frame for frame.
    E_warp (Lai et al. 2018) with the flow (OpenCV DIS MEDIUM) computed on INPUT and Ruder et
    al.'s occlusion mask; tPSNR = -10 log10(E_warp). INPUT's own E_warp is the floor set by flow
    error. A stabilised run is reported with its fidelity (PSNR, SSIM) to OUTPUT, since blurring
    or freezing frames also lowers E_warp.
    """
    from i2i.analysis.temporal import measure, plot_frame_errors, summary_lines

    outputs = {"output": output_spec}
    if stabilized_spec is not None:
        outputs["stabilized"] = stabilized_spec
    reference = "output" if stabilized_spec is not None else None
    report = measure(input_spec, outputs, reference=reference, max_frames=max_frames)
    for line in summary_lines(report):
        click.echo(line)
    if plot_path is not None:
        click.echo(f"plot: {plot_frame_errors(report, plot_path)}")
    if json_path is not None:
        write_text(json_path, json.dumps(report, indent=2), "JSON")
        click.echo(f"json: {json_path}")
