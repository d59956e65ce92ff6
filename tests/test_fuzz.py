"""Property-based tests (hypothesis): frame pre/post-processing and the spectral tools.

Every property holds for any input the functions document, at any frame size from 1x1 to 600x600
(odd sizes and 1x600 strips included): the conversions either give results of the documented shape,
dtype and range or raise an ``I2IError`` (never a raw numpy/OpenCV exception, never a NaN), and the
inverse pairs round-trip exactly.

Runs are reproducible by default (profile ``ci``: derandomised, no example database written). For a
longer random search: ``I2I_FUZZ=explore pytest tests/test_fuzz.py`` (20x the examples, new seeds).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from i2i.analysis import (
    SpectrumStats,
    estimate_profile,
    lfd,
    log_magnitude,
    normalised_log_magnitude,
    radial_index,
    radial_profile,
    ring_radius,
)
from i2i.errors import I2IError
from i2i.runtime.card import ModelIO
from i2i.runtime.frames import FrameCodec, NonFiniteOutputError, postprocess, preprocess, to_bgr_uint8
from i2i.runtime.spectral import ProfileRefiner, SpectralProfile, centred_spectrum, open_refiner, stig_refine

_SLOW = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]
settings.register_profile("ci", derandomize=True, database=None, deadline=None, suppress_health_check=_SLOW)
settings.register_profile("explore", deadline=None, suppress_health_check=_SLOW)
_PROFILE = os.environ.get("I2I_FUZZ", "ci")
_SCALE = 20 if _PROFILE == "explore" else 1


def fuzz(examples: int) -> settings:
    """Settings for one property: the chosen profile with ``examples`` examples (the whole file stays < 40 s)."""
    return settings(settings.get_profile(_PROFILE), max_examples=examples * _SCALE)


@contextlib.contextmanager
def no_warnings() -> Iterator[None]:
    """numpy's RuntimeWarnings (overflow in a cast, invalid value) mark a NaN or Inf in the making: fail on them."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


# --------------------------------------------------------------------------- strategies

# Frame sides: small ones often (1, 2, odd sizes), any up to 600 (so 1x600 strips and 600x600 occur).
sides = st.integers(1, 16) | st.integers(1, 600)
multiples = st.sampled_from([1, 2, 4, 8, 16, 32, 128]) | st.integers(1, 700)
FLOAT_DTYPES = [np.float16, np.float32, np.float64]
# What OpenCV can decode (gray, BGR, BGRA; 8/16-bit, float) and what it should never hand us.
ACCEPTED_DTYPES = [np.uint8, np.uint16, *FLOAT_DTYPES]
REJECTED_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint32, np.bool_, np.complex64]


def layouts(array: np.ndarray) -> st.SearchStrategy[np.ndarray]:
    """The same pixels in another memory layout: C order, negative strides, Fortran order, strided columns."""
    reversed_view = np.ascontiguousarray(array[::-1, ::-1])[::-1, ::-1]
    strided_view = np.repeat(array, 2, axis=1)[:, ::2]
    return st.sampled_from([array, reversed_view, np.asfortranarray(array), strided_view])


@st.composite
def bgr_frames(draw: st.DrawFn, count: int = 1) -> list[np.ndarray]:
    """``count`` HxWx3 uint8 BGR frames of one size, each in a random memory layout."""
    h, w = draw(sides), draw(sides)
    return [draw(hnp.arrays(np.uint8, (h, w, 3)).flatmap(layouts)) for _ in range(count)]


@st.composite
def decoded_images(draw: st.DrawFn, max_side: int = 96) -> np.ndarray:
    """Anything an image decoder might return: HxW or HxWxC, C in 1..5, any numeric dtype, empty included."""
    dtype = draw(st.sampled_from(ACCEPTED_DTYPES + REJECTED_DTYPES))
    h, w = draw(st.integers(0, max_side)), draw(st.integers(0, max_side))
    shape = draw(st.sampled_from([(h, w), (h, w, 1), (h, w, 2), (h, w, 3), (h, w, 4), (h, w, 5)]))
    return draw(hnp.arrays(dtype, shape))


def images01(max_side: int = 32, max_n: int = 3, max_channels: int = 4) -> st.SearchStrategy[np.ndarray]:
    """(N, C, H, W) image sets in [0, 1], float32 or float64, any small size."""
    shape = st.tuples(
        st.integers(1, max_n), st.integers(1, max_channels), st.integers(1, max_side), st.integers(1, max_side)
    )
    return st.sampled_from([np.float32, np.float64]).flatmap(
        lambda dtype: hnp.arrays(dtype, shape, elements=st.floats(0.0, 1.0, width=np.dtype(dtype).itemsize * 8))
    )


def unit_batches(max_side: int = 48, max_n: int = 2) -> st.SearchStrategy[np.ndarray]:
    """(N, 3, H, W) float32 batches in [-1, 1], what a generator hands the refine stage."""
    shape = st.tuples(st.integers(1, max_n), st.just(3), st.integers(1, max_side), st.integers(1, max_side))
    return hnp.arrays(np.float32, shape, elements=st.floats(-1.0, 1.0, width=32))


@st.composite
def spectral_profiles(draw: st.DrawFn, channels: int = 3, flat: bool = False) -> SpectralProfile:
    """A valid profile: increasing radii from 0, positive gains, notches anywhere; ``flat``: every gain 1."""
    rings = draw(st.integers(1, 12))
    steps = draw(hnp.arrays(np.float64, rings - 1, elements=st.floats(1e-3, 0.2)))
    radius = np.concatenate([[0.0], np.cumsum(steps)])
    notches = draw(st.integers(0, 4))
    gain = st.just(1.0) if flat else st.floats(0.25, 4.0)
    depth = st.just(1.0) if flat else st.floats(0.01, 1.0)
    return SpectralProfile(
        radius=radius,
        radial_gain=draw(hnp.arrays(np.float64, (channels, rings), elements=gain)),
        notch_freq=draw(hnp.arrays(np.float64, (notches, 2), elements=st.floats(-0.5, 0.5))),
        notch_gain=draw(hnp.arrays(np.float64, (notches, channels), elements=depth)),
        notch_width=draw(hnp.arrays(np.float64, notches, elements=st.floats(1e-3, 0.1))),
        size=(draw(st.integers(1, 64)), draw(st.integers(1, 64))),
    )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


# --------------------------------------------------------------------------- reference implementations


def reference_bgr(image: np.ndarray) -> np.ndarray:
    """to_bgr_uint8's documented result as exact float64 levels (0..255, not yet rounded), HxWx3."""
    planes = image.reshape(*image.shape[:2], -1)
    if image.dtype == np.uint8:
        levels = planes.astype(np.float64)
    elif image.dtype == np.uint16:
        levels = planes / 257.0  # 65535 -> 255
    else:  # float in [0, 1] (half a level of slack either side, which rounds as clipping would)
        levels = np.clip(planes.astype(np.float64), 0.0, 1.0) * 255.0
    if levels.shape[2] == 1:
        return np.repeat(levels, 3, axis=2)
    return levels[..., :3]  # BGRA drops alpha


def float_frame_in_contract(image: np.ndarray) -> bool:
    """The frame contract for floats: finite, within half an 8-bit level of 0..1 (exact in float64:
    every float16/32 value converts exactly)."""
    values = image.astype(np.float64)
    if image.size == 0:
        return True
    return bool(np.isfinite(values).all() and values.min() >= -0.5 / 255 and values.max() <= 1 + 0.5 / 255)


def reference_pad(frame: np.ndarray, multiple: int) -> np.ndarray:
    """Bottom/right padding to the multiple: reflect-101 (numpy's "reflect"), edge where an axis is too short."""
    h, w = frame.shape[:2]
    pad_h, pad_w = -h % multiple, -w % multiple
    rows = np.pad(frame, ((0, pad_h), (0, 0), (0, 0)), mode="reflect" if pad_h < h else "edge")
    return np.pad(rows, ((0, 0), (0, pad_w), (0, 0)), mode="reflect" if pad_w < w else "edge")


def to_unit(levels: np.ndarray) -> np.ndarray:
    """x / 127.5 - 1 rounded once to float32: the documented value of each uint8 level."""
    return (levels.astype(np.float64) / 127.5 - 1.0).astype(np.float32)


# Float32 arithmetic on values up to 255 errs by a few ulps of 255 (2^-16 each); 1e-4 covers it with room.
# So a converted level is within 0.5 + 1e-4 of the exact value: never more than one level off, and
# exact wherever the exact value is not within 1e-4 of a rounding tie.
LEVEL_SLACK = 1e-4


def assert_levels(actual: np.ndarray, exact: np.ndarray) -> None:
    """uint8 ``actual`` is the round-to-nearest of float64 ``exact`` levels, up to float32 error at ties."""
    assert actual.dtype == np.uint8 and actual.shape == exact.shape
    error = np.abs(actual.astype(np.float64) - exact)
    assert error.max(initial=0.0) <= 0.5 + LEVEL_SLACK, f"off by {error.max()} levels"


# --------------------------------------------------------------------------- frames: decoded images


@fuzz(150)
@given(image=decoded_images())
def test_to_bgr_uint8_normalises_or_rejects_with_i2ierror(image: np.ndarray) -> None:
    supported = image.dtype in ACCEPTED_DTYPES and (image.ndim == 2 or image.shape[2] in (1, 3, 4))
    if not supported or image.size == 0:
        with pytest.raises(I2IError, match="unsupported image|empty image"):
            to_bgr_uint8(image)
        return
    if image.dtype.kind == "f" and not float_frame_in_contract(image):
        with pytest.raises(I2IError, match="float frame"):  # refused, never clipped into a white frame
            to_bgr_uint8(image)
        return
    with no_warnings():
        out = to_bgr_uint8(image)
    assert out.shape == (*image.shape[:2], 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    assert_levels(out, reference_bgr(image))
    if image.dtype in (np.uint8, np.uint16):  # integer inputs: exact (x / 257 has no ties: 257 is odd)
        np.testing.assert_array_equal(out, np.rint(reference_bgr(image)))


# --------------------------------------------------------------------------- frames: preprocess


@fuzz(40)
@given(frames=st.integers(1, 3).flatmap(lambda n: bgr_frames(count=n)), multiple=multiples)
def test_preprocess_shape_range_and_values(frames: list[np.ndarray], multiple: int) -> None:
    h, w = frames[0].shape[:2]
    with no_warnings():
        batch, size = preprocess(frames, multiple)
    assert size == (h, w)
    assert batch.shape == (len(frames), 3, -(-h // multiple) * multiple, -(-w // multiple) * multiple)
    assert batch.dtype == np.float32 and batch.flags.c_contiguous
    assert np.isfinite(batch).all() and batch.min() >= -1.0 and batch.max() <= 1.0
    for frame, planes in zip(frames, batch):
        expected = to_unit(reference_pad(frame, multiple)[..., ::-1])  # BGR -> RGB
        np.testing.assert_array_equal(planes.transpose(1, 2, 0), expected)


@st.composite
def frame_lists(draw: st.DrawFn) -> list[np.ndarray]:
    """1..3 arrays that may or may not be a valid batch: wrong dtype/channels/ndim, empty, mixed sizes."""
    h, w = draw(st.integers(0, 12)), draw(st.integers(0, 12))
    frames = []
    for _ in range(draw(st.integers(1, 3))):
        fh, fw = draw(st.sampled_from([(h, w), (h, w + 1), (h + 1, w)]))
        dtype = draw(st.sampled_from([np.uint8, np.uint8, np.uint16, np.float32, np.int8]))
        shape = draw(st.sampled_from([(fh, fw, 3), (fh, fw, 3), (fh, fw), (fh, fw, 4), (fh, fw, 1), (1, fh, fw, 3)]))
        frames.append(draw(hnp.arrays(dtype, shape)))
    return frames


@fuzz(120)
@given(frames=frame_lists(), multiple=multiples)
def test_preprocess_accepts_only_same_size_bgr_uint8(frames: list[np.ndarray], multiple: int) -> None:
    first = frames[0]
    valid = all(
        f.ndim == 3 and f.shape[2] == 3 and f.dtype == np.uint8 and f.shape[:2] == first.shape[:2] for f in frames
    )
    if not valid or first.size == 0:
        with pytest.raises(I2IError):
            preprocess(frames, multiple)
        return
    batch, _ = preprocess(frames, multiple)
    assert batch.shape[:2] == (len(frames), 3)


def test_preprocess_rejects_programming_errors_with_valueerror() -> None:
    """No frames or a multiple < 1 is a caller's bug, not bad input: ValueError, as documented by the code."""
    with pytest.raises(ValueError, match="at least one frame"):
        preprocess([], 8)
    with pytest.raises(ValueError, match="multiple must be >= 1"):
        preprocess([np.zeros((2, 2, 3), np.uint8)], 0)


# --------------------------------------------------------------------------- frames: postprocess


@st.composite
def model_outputs(draw: st.DrawFn) -> tuple[np.ndarray, tuple[int, int]]:
    """A float NCHW batch (fp16/32/64) with finite values of any size, NaN/Inf in about half the examples, and
    a crop size that fits it."""
    dtype = draw(st.sampled_from(FLOAT_DTYPES))
    n, height, width = draw(st.integers(1, 2)), draw(st.integers(1, 48) | sides), draw(st.integers(1, 48))
    non_finite = draw(st.booleans())
    elements = hnp.from_dtype(np.dtype(dtype), allow_nan=non_finite, allow_infinity=non_finite)
    near_range = st.floats(-1.5, 1.5, width=np.dtype(dtype).itemsize * 8)  # the usual case, as background
    batch = draw(hnp.arrays(dtype, (n, 3, height, width), elements=elements | near_range, fill=near_range))
    return batch, (draw(st.integers(1, height)), draw(st.integers(1, width)))


@fuzz(150)
@given(output=model_outputs())
def test_postprocess_maps_any_float_output_to_frames_or_reports_non_finite(
    output: tuple[np.ndarray, tuple[int, int]],
) -> None:
    batch, (h, w) = output
    finite = np.isfinite(batch)
    if not finite.all():  # documented: NaN/Inf anywhere in the batch (even outside the crop) is an error
        with pytest.raises(NonFiniteOutputError) as info:
            postprocess(batch, (h, w))
        assert (info.value.count, info.value.total) == (int((~finite).sum()), batch.size)
        return
    with no_warnings():
        frames = postprocess(batch, (h, w))
    assert len(frames) == batch.shape[0]
    for frame, planes in zip(frames, batch):
        assert frame.flags.c_contiguous
        exact = (np.clip(planes[::-1, :h, :w].astype(np.float64), -1.0, 1.0) + 1.0) * 127.5  # RGB -> BGR
        assert_levels(frame, exact.transpose(1, 2, 0))


@fuzz(60)
@given(
    batch=hnp.arrays(hnp.scalar_dtypes(), hnp.array_shapes(min_dims=0, max_dims=5, max_side=4)),
    crop=st.tuples(st.integers(-1, 5), st.integers(-1, 5)),
)
def test_postprocess_rejects_bad_outputs_with_i2ierror(batch: np.ndarray, crop: tuple[int, int]) -> None:
    shape = batch.shape
    fits = len(shape) == 4 and shape[1] == 3 and 1 <= crop[0] <= shape[2] and 1 <= crop[1] <= shape[3]
    if not fits or batch.dtype.kind != "f":
        with pytest.raises(I2IError, match="model output has|cannot crop"):
            postprocess(batch, crop)
    elif np.isfinite(batch).all():
        assert all(f.shape == (*crop, 3) for f in postprocess(batch, crop))


@fuzz(60)
@given(frames=st.integers(1, 2).flatmap(lambda n: bgr_frames(count=n)), multiple=multiples)
def test_preprocess_postprocess_round_trip_is_exact(frames: list[np.ndarray], multiple: int) -> None:
    """The documented exact inverse: x / 127.5 - 1 rounded to float32 errs by < 2^-25, i.e. < 1e-5 of a level."""
    batch, size = preprocess(frames, multiple)
    for frame, restored in zip(frames, postprocess(batch, size)):
        np.testing.assert_array_equal(restored, frame)


# --------------------------------------------------------------------------- frames: FrameCodec (every model I/O)


@st.composite
def model_ios(draw: st.DrawFn) -> ModelIO:
    kind = draw(st.sampled_from(["tensor", "frame"]))
    dtype = draw(st.sampled_from(["float32", "float16"])) if kind == "tensor" else "uint8"
    multiple = draw(st.sampled_from([1, 2, 4, 8, 16, 32]))
    static = draw(
        st.none() | st.tuples(st.integers(1, 8), st.integers(1, 8)).map(lambda t: (t[0] * multiple, t[1] * multiple))
    )
    return ModelIO(kind=kind, dtype=dtype, size_multiple=multiple, static_size=static)


@st.composite
def decodable_batches(draw: st.DrawFn) -> list[np.ndarray]:
    """1..2 images of one size that to_bgr_uint8 accepts: gray/BGR/BGRA, uint8/uint16/float, any size to 600."""
    dtype = draw(st.sampled_from(ACCEPTED_DTYPES))
    h, w = draw(sides), draw(sides)
    shape = draw(st.sampled_from([(h, w), (h, w, 1), (h, w, 3), (h, w, 4)]))
    if np.dtype(dtype).kind == "f":  # the frame contract: finite floats in 0..1
        width = 8 * np.dtype(dtype).itemsize
        unit = st.floats(0.0, 1.0, width=width)
        return [draw(hnp.arrays(dtype, shape, elements=unit)) for _ in range(draw(st.integers(1, 2)))]
    return [draw(hnp.arrays(dtype, shape)) for _ in range(draw(st.integers(1, 2)))]


@fuzz(80)
@given(io=model_ios(), images=decodable_batches())
def test_frame_codec_round_trips_through_an_identity_model(io: ModelIO, images: list[np.ndarray]) -> None:
    """encode gives the batch the model's I/O describes; decode(identity) gives back the frames: exactly when
    frames are only padded (fp16 errs by <= 2^-12 < 0.04 levels), and frames of the right size and dtype when a
    fixed-size model makes the codec resample."""
    codec = FrameCodec(io)
    h, w = images[0].shape[:2]
    with no_warnings():
        batch, geometry = codec.encode(images)
    model_h, model_w = io.static_size or (h, w)
    m = 1 if io.static_size else io.size_multiple
    padded = (-(-model_h // m) * m, -(-model_w // m) * m)
    assert batch.shape == io.batch_shape(len(images), *padded) and batch.dtype == np.dtype(io.dtype)
    if io.kind == "tensor":
        assert np.isfinite(batch).all() and batch.min() >= -1.0 and batch.max() <= 1.0
    assert geometry.size == (h, w) and geometry.resized == (io.static_size not in (None, (h, w)))
    frames = codec.decode(batch, geometry)
    assert len(frames) == len(images)
    for image, frame in zip(images, frames):
        assert frame.shape == (h, w, 3) and frame.dtype == np.uint8
        if not geometry.resized:
            np.testing.assert_array_equal(frame, to_bgr_uint8(image))


@fuzz(40)
@given(io=model_ios().filter(lambda io: io.kind == "tensor"), bad=st.sampled_from([np.nan, np.inf, -np.inf]))
def test_frame_codec_reports_non_finite_model_output(io: ModelIO, bad: float) -> None:
    codec = FrameCodec(io)
    batch, geometry = codec.encode([np.zeros((5, 7, 3), np.uint8)])
    batch[0, 1, -1, -1] = bad
    with pytest.raises(NonFiniteOutputError, match="1 non-finite values"):
        codec.decode(batch, geometry)


# --------------------------------------------------------------------------- spectra and LFD


@fuzz(60)
@given(images=images01())
def test_spectra_are_finite_and_in_range(images: np.ndarray) -> None:
    with no_warnings():
        spectrum = centred_spectrum(images)
        magnitude = log_magnitude(images)
        normed = normalised_log_magnitude(images)
    assert spectrum.shape == magnitude.shape == normed.shape == images.shape
    assert np.isfinite(spectrum).all() and np.isfinite(magnitude).all() and magnitude.min() >= 0.0
    assert np.isfinite(normed).all() and normed.min() >= 0.0 and normed.max() <= 1.0
    h, w = images.shape[-2:]  # DC of the centred spectrum is the plane's sum
    np.testing.assert_allclose(
        spectrum[..., h // 2, w // 2].real, images.astype(np.float64).sum(axis=(-2, -1)), rtol=1e-9, atol=1e-9
    )


@fuzz(60)
@given(
    size=st.tuples(sides, sides).filter(lambda s: s[0] * s[1] <= 40_000),
    value=st.floats(-1e6, 1e6),
    reduce=st.sampled_from(["mean", "median"]),
)
def test_radial_profile_of_a_constant_is_that_constant(size: tuple[int, int], value: float, reduce: str) -> None:
    h, w = size
    profile = radial_profile(np.full((2, h, w), value), reduce=reduce)
    rings = ring_radius(h, w)
    assert profile.shape == (2, len(rings)) and np.isfinite(profile).all()
    occupied = np.bincount(radial_index(h, w).ravel(), minlength=len(rings)) > 0
    np.testing.assert_allclose(profile[:, occupied], value, rtol=1e-12)
    assert rings[0] == 0.0 and np.all(np.diff(rings) > 0)


@fuzz(60)
@given(real=images01(), fake=images01(), split=st.integers(1, 2))
def test_lfd_is_a_finite_nonnegative_symmetric_distance(real: np.ndarray, fake: np.ndarray, split: int) -> None:
    with no_warnings():
        assert lfd(real, real) == 0.0
        if real.shape[1:] != fake.shape[1:]:
            with pytest.raises(I2IError):
                lfd(real, fake)
            return
        distance = lfd(real, fake)
        assert np.isfinite(distance) and distance >= 0.0
        assert distance == lfd(fake, real)
        # Statistics accumulated batch by batch (constant memory) equal those of the whole set.
        stats = SpectrumStats()
        for part in np.array_split(real, min(split, len(real))):
            stats.add(part)
        assert np.isclose(lfd(stats, fake), distance, rtol=1e-9, atol=1e-9)


@fuzz(30)
@given(shape=hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=3))
def test_spectrum_stats_reject_what_is_not_an_image_batch(shape: tuple[int, ...]) -> None:
    stats = SpectrumStats()
    images = np.zeros(shape)
    if len(shape) in (3, 4) and 0 not in shape[-3:]:  # no images (N = 0) is fine, empty images are not
        stats.add(images)
        assert stats.count == (1 if len(shape) == 3 else shape[0])
    else:
        with pytest.raises(I2IError):
            stats.add(images)


# --------------------------------------------------------------------------- spectral filter profile


@fuzz(40)
@given(profile=spectral_profiles(), size=st.tuples(sides, sides).filter(lambda s: s[0] * s[1] <= 40_000))
def test_gain_map_is_finite_positive_and_conjugate_symmetric(profile: SpectralProfile, size: tuple[int, int]) -> None:
    h, w = size
    with no_warnings():
        gains = profile.gain_map(h, w)
    assert gains.shape == (3, h, w) and np.isfinite(gains).all() and gains.min() > 0.0
    assert gains.max() <= profile.radial_gain.max() * (1 + 1e-12)  # notches only attenuate
    mirror = gains[:, (-np.arange(h)) % h][:, :, (-np.arange(w)) % w]  # G(-u, -v)
    np.testing.assert_array_equal(gains, mirror)


@fuzz(40)
@given(profile=spectral_profiles(), batch=unit_batches())
def test_profile_refiner_output_is_finite_and_in_range(profile: SpectralProfile, batch: np.ndarray) -> None:
    with no_warnings():
        out = ProfileRefiner(Path("fuzz.npz"), profile)(batch.copy())
    assert out.shape == batch.shape and out.dtype == np.float32
    assert np.isfinite(out).all() and out.min() >= -1.0 and out.max() <= 1.0


@fuzz(40)
@given(profile=spectral_profiles(flat=True), frames=bgr_frames().filter(lambda f: f[0].size <= 3 * 40_000))
def test_flat_profile_refinement_is_identity(profile: SpectralProfile, frames: list[np.ndarray]) -> None:
    """All gains 1 (notches of depth 1 included): only the float32 DFT pair's round-off remains. An FFT of n
    points rounds once per output in each of its log2(n) butterfly stages (Higham, Accuracy and Stability of
    Numerical Algorithms, §24.1: relative L2 error ≤ log2(n)·η, η a few u, u = 2^-24), and the transform keeps
    the signal's scale (|x| ≤ 1), so forward plus inverse move an element by about 2·log2(HW)·u: 1.8e-6 for
    the frames drawn here (HW ≤ 40 000), 2.2e-6 even at 600x600. atol 1e-5 leaves a factor of 4 for η and the
    mixed radices of prime sides. What matters is that it stays far below half a uint8 level (1/255 ≈ 3.9e-3
    on [-1, 1]), so the refined frame is the input frame, pixel for pixel."""
    batch, size = preprocess(frames, 1)
    refined = ProfileRefiner(Path("flat.npz"), profile)(batch.copy())
    np.testing.assert_allclose(refined, batch, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(postprocess(refined, size)[0], frames[0])


@fuzz(20)
@given(images=images01(max_side=24, max_channels=3), other=images01(max_side=24, max_channels=3))
def test_estimated_profile_is_valid_and_identity_for_one_set(images: np.ndarray, other: np.ndarray) -> None:
    stats = SpectrumStats()
    stats.add(images)
    with no_warnings():
        same = estimate_profile(stats, stats)  # nothing to correct: every gain 1, no notches
    np.testing.assert_array_equal(same.radial_gain, 1.0)
    assert same.notch_freq.shape == (0, 2)
    if other.shape[1:] != images.shape[1:]:
        return
    fake = SpectrumStats()
    fake.add(other)
    with no_warnings():
        profile = estimate_profile(stats, fake)
    assert np.isfinite(profile.radial_gain).all() and np.all(profile.radial_gain[:, 0] == 1.0)  # DC kept
    assert profile.radial_gain.min() >= 0.25 * (1 - 1e-12) and profile.radial_gain.max() <= 4.0 * (1 + 1e-12)
    assert np.all((profile.notch_gain > 0) & (profile.notch_gain <= 1.0))
    predicted = profile.provenance["predicted_psnr_db"]
    assert predicted == "inf" or predicted >= 33.0


@fuzz(30)
@given(
    profile=st.integers(1, 4).flatmap(lambda channels: spectral_profiles(channels=channels)),
    provenance=st.dictionaries(st.text(max_size=8), json_values, max_size=4),
)
def test_profile_save_load_round_trips_exactly(profile: SpectralProfile, provenance: dict[str, Any]) -> None:
    profile = dataclasses.replace(profile, provenance=provenance)
    with tempfile.TemporaryDirectory() as tmp:
        path = profile.save(Path(tmp) / "sub" / "profile.npz")
        loaded = SpectralProfile.load(path)
        assert sorted(p.name for p in path.parent.iterdir()) == ["profile.npz"]  # no temporary left behind
    for name in ("radius", "radial_gain", "notch_freq", "notch_gain", "notch_width"):
        original, restored = getattr(profile, name), getattr(loaded, name)
        assert restored.dtype == np.float64 and restored.shape == original.shape, name
        np.testing.assert_array_equal(restored, original)
    assert loaded.size == profile.size and loaded.provenance == provenance


# A saved profile's fields, any of which a corrupt or hand-edited file may drop or replace with anything.
_PROFILE_KEYS = ["format", "radius", "radial_gain", "notch_freq", "notch_gain", "notch_width", "size", "provenance"]
any_arrays = hnp.arrays(
    hnp.scalar_dtypes() | hnp.unicode_string_dtypes(max_len=4),
    hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
)


@st.composite
def profile_edits(draw: st.DrawFn) -> tuple[SpectralProfile, dict[str, np.ndarray | None]]:
    """A valid profile and 1..2 of its saved fields dropped (None) or replaced: by an array of any dtype and
    shape, or by one of the right shape holding any float (NaN, Inf, negative, huge)."""
    profile = draw(spectral_profiles())
    edits: dict[str, np.ndarray | None] = {}
    for key in draw(st.lists(st.sampled_from(_PROFILE_KEYS), min_size=1, max_size=2, unique=True)):
        shape = np.shape(getattr(profile, key, ()))
        edits[key] = draw(st.none() | any_arrays | hnp.arrays(np.float64, shape))
    return profile, edits


@fuzz(80)
@given(case=profile_edits())
def test_corrupt_profile_is_refused_or_refines_safely(case: tuple[SpectralProfile, dict[str, Any]]) -> None:
    """A profile file with a field missing or replaced (any dtype/shape, NaN/Inf) is refused with an I2IError at
    load, or loads into a profile that refines to finite output in range."""
    profile, edits = case
    with tempfile.TemporaryDirectory() as tmp:
        path = profile.save(Path(tmp) / "profile.npz")
        with np.load(path) as data:
            fields = {key: data[key] for key in data.files}
        for key, value in edits.items():
            if value is None:
                del fields[key]
            else:
                fields[key] = value
        np.savez(path, **fields)
        try:
            refiner = open_refiner(path)
        except I2IError:
            return
    batch = np.linspace(-1, 1, 3 * 5 * 7, dtype=np.float32).reshape(1, 3, 5, 7)
    with refiner, no_warnings():
        try:
            out = refiner(batch)
        except I2IError as exc:
            assert "channels" in str(exc)
            return
    assert isinstance(refiner.profile.provenance, dict)
    assert np.isfinite(out).all() and out.min() >= -1.0 and out.max() <= 1.0


@fuzz(40)
@given(content=st.binary(max_size=600) | st.just(b"PK\x03\x04"), cut=st.integers(0, 10_000))
def test_garbage_or_truncated_profile_files_raise_i2ierror(content: bytes, cut: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        garbage = Path(tmp) / "garbage.npz"
        garbage.write_bytes(content)
        with pytest.raises(I2IError):
            SpectralProfile.load(garbage)
        good = Path(tmp) / "good.npz"
        flat = SpectralProfile(np.zeros(1), np.ones((3, 1)), np.zeros((0, 2)), np.zeros((0, 3)), np.zeros(0), (8, 8))
        data = flat.save(good).read_bytes()
        good.write_bytes(data[: cut % len(data)])  # every strict prefix is a truncated file
        with pytest.raises(I2IError):
            SpectralProfile.load(good)


# --------------------------------------------------------------------------- refiner inputs and STIG


@fuzz(40)
@given(batch=hnp.arrays(hnp.scalar_dtypes(), hnp.array_shapes(min_dims=0, max_dims=5, max_side=4)))
def test_refiner_accepts_only_float32_rgb_batches(batch: np.ndarray) -> None:
    flat = SpectralProfile(np.zeros(1), np.ones((3, 1)), np.zeros((0, 2)), np.zeros((0, 3)), np.zeros(0), (8, 8))
    refiner = ProfileRefiner(Path("flat.npz"), flat)
    if batch.ndim == 4 and batch.shape[1] == 3 and batch.dtype == np.float32:
        assert refiner(batch.copy()).shape == batch.shape
    else:
        with pytest.raises(I2IError, match="expected"):
            refiner(batch)


@fuzz(40)
@given(
    batch=unit_batches(max_side=40),
    spectrum_size=st.none() | st.integers(1, 32),
    multiple=st.sampled_from([1, 2, 4, 8]),
)
def test_stig_refinement_with_an_identity_network_is_identity(
    batch: np.ndarray, spectrum_size: int | None, multiple: int
) -> None:
    """The host side of STIG around a network that changes nothing gives back the image. The only error is the
    normalised log-magnitude's float32 rounding, δ ≤ 2^-25 · span / 2 in log|F| with span ≤ log1p(HW); by Parseval
    that moves each [0, 1] plane by at most δ · (1 + √(HW)) in L2 (a bound on the max error too), doubled on [-1, 1]."""
    h, w = batch.shape[-2:]
    with no_warnings():
        out = stig_refine(batch, lambda spectrum: spectrum, spectrum_size, multiple)
    assert out.shape == batch.shape and out.dtype == np.float32 and np.isfinite(out).all()
    delta = 2.0**-25 * np.log1p(h * w) / 2
    bound = 2 * delta * (1 + np.sqrt(h * w)) + 2.0**-24  # + the float32 cast of the output
    np.testing.assert_allclose(out, batch, rtol=0, atol=bound)


# --------------------------------------------------------------------------- export: in-graph frame I/O


@pytest.fixture(scope="module")
def frame_graphs() -> Any:
    """ONNX Runtime sessions of an identity generator wrapped by ``wrap_frame_io``, one per size multiple."""
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from i2i.export.frame import FRAME_INPUT, FRAME_OUTPUT, wrap_frame_io

    sessions: dict[int, Any] = {}

    def session(multiple: int) -> Any:
        if multiple not in sessions:
            value = helper.make_tensor_value_info
            graph = helper.make_graph(
                [helper.make_node("Identity", ["x"], ["y"])],
                "identity",
                [value("x", TensorProto.FLOAT, ["n", 3, "h", "w"])],
                [value("y", TensorProto.FLOAT, ["n", 3, "h", "w"])],
            )
            model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
            wrapped = wrap_frame_io(model, size_multiple=multiple, static_size=None, batch=None)
            onnx.checker.check_model(wrapped)
            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            sessions[multiple] = ort.InferenceSession(wrapped.SerializeToString(), options, ["CPUExecutionProvider"])
        return lambda frames: sessions[multiple].run([FRAME_OUTPUT], {FRAME_INPUT: frames})[0]

    return session


@fuzz(25)
@given(frames=bgr_frames(count=2), multiple=st.sampled_from([1, 2, 4, 8, 16]))
def test_in_graph_frame_io_round_trips_like_the_host(
    frame_graphs: Any, frames: list[np.ndarray], multiple: int
) -> None:
    """The documented domain: every padded axis longer than its padding (the graph mirrors, it has no edge fallback)."""
    h, w = frames[0].shape[:2]
    assume(-h % multiple < h and -w % multiple < w)
    stacked = np.stack(frames)
    out = frame_graphs(multiple)(stacked)
    np.testing.assert_array_equal(out, stacked)
    host = postprocess(*preprocess(frames, multiple))
    np.testing.assert_array_equal(out, np.stack(host))
