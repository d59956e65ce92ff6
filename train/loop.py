"""The training loop, shared by every method: read it top to bottom.

data → method.train_step → LR schedule → log (JSONL) → sample grids (PNG) → checkpoints.
The learning rate is constant for the first ``epochs / (epochs + epochs_decay)`` of the run and
then decays linearly to zero (the pix2pix/CycleGAN schedule), stepped per iteration. With
``max_steps`` the same shape is compressed into that many steps, which is what short runs want.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import click
import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm.auto import tqdm

from i2i._files import write_bytes
from i2i.errors import I2IError, Interrupted
from i2i.train import distributed
from i2i.train.checkpoint import (
    TEST_NORMS,
    atomic_file,
    atomic_save,
    atomic_write,
    check_test_mode,
    make_checkpoint,
    prepare_for_test,
    test_norm_for_batch,
)
from i2i.train.data import (
    DIRECTIONS,
    PREPROCESS_MODES,
    SizedDataset,
    check_direction,
    check_stackable,
    collate_first_size,
    collate_same_size,
    without_resize_crop,
)
from i2i.train.methods import Method, MethodConfig, get_method
from i2i.train.metrics import Evaluator
from i2i.train.options import option
from i2i.train.run_folder import claim_run_folder, forget_after

AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class TrainConfig:
    """Options every method shares; each field's help and bounds are the ``i2i-train`` option's."""

    data: str = option(
        help="Dataset root (paired: train/A + train/B, or A|B side by side in train/; unpaired: trainA + trainB)."
    )
    out: str = option(
        help="Run folder for model.pt, state.pt, samples/ and log.jsonl; one that holds another run is refused "
        "without --resume or --overwrite [default: a fresh runs/METHOD, runs/METHOD2, ...]."
    )
    batch_size: int = option(1, "Images per step.", minimum=1)
    load_size: int = option(
        286,
        "Resize images to this square size before cropping; the width for the scale_width modes; unused by "
        "--preprocess crop and none.",
        minimum=1,
    )
    crop_size: int = option(
        256, "Random crop size used for training (scale_width: the least height; none: unused).", minimum=1
    )
    flip: bool = option(True, "Random horizontal flips.")
    preprocess: str = option(
        "resize_and_crop",
        "As the reference's --preprocess: resize_and_crop (LOAD_SIZE square, random crop), crop (random crop "
        "of the image as is), scale_width (width to LOAD_SIZE, aspect kept), scale_width_and_crop, none; "
        "sides are then rounded to a multiple of 4 (scale_width and none keep each image's aspect: images of "
        "different shapes need --batch-size 1).",
        choices=PREPROCESS_MODES,
    )
    direction: str = option(
        "AtoB", "Which side of the data is the input (BtoA swaps A and B, in every layout).", choices=DIRECTIONS
    )
    max_steps: int = option(
        0, "Stop after this many steps; the LR schedule is compressed to fit (0 = full epoch schedule).", minimum=0
    )
    seed: int = option(0, "Random seed (python, numpy, torch, data order).")
    workers: int = option(1, "DataLoader worker processes.", minimum=0)
    device: str = option("auto", "auto, cpu, cuda or cuda:N.")
    log_every: int = option(20, "Write a log.jsonl line every N steps.", minimum=1)
    sample_every: int = option(250, "Write a sample grid PNG every N steps.", minimum=1)
    save_every: int = option(1000, "Write model.pt + state.pt every N steps.", minimum=1)
    keep_last: int = option(
        3, "State history kept in OUT/checkpoints/ (fallback when the latest state is corrupt).", minimum=0
    )
    resume: bool = option(False, "Continue from OUT/state.pt.")
    overwrite: bool = option(
        False,
        "Clear the run already in OUT (its model*.pt, state.pt, checkpoints/, samples/, logs) and train anew; "
        "other files in OUT stay.",
    )
    deterministic: bool = option(False, "Deterministic algorithms (bit-identical reruns and resumes).")
    amp: str = option(
        "none", "Mixed precision: none, bf16 (CPU or GPU) or fp16 (CUDA, gradient scaling).", choices=tuple(AMP_DTYPES)
    )
    progress: bool = option(True, "Show a progress bar.")
    eval_every: int = option(
        0,
        "Evaluate every N steps (PSNR/SSIM if paired, FID/KID with weights); 0 = at the end, -1 = never.",
        minimum=-1,
    )
    eval_data: str = option(
        "",
        "Held-out set with test/A + test/B, A + B or testA + testB (distill: source images or video files, "
        "which the teacher labels) [default: DATA's test split].",
    )
    eval_images: int = option(0, "Evaluate on the first N images of each side only (0 = all).", minimum=0)
    inception_weights: str = option(
        "", "Inception-v3 file for FID/KID (pytorch-fid's pt_inception-2015-12-05-6726825d.pth)."
    )
    test_norm: str | None = option(
        None,
        "Test-time BatchNorm (model.pt, samples, evaluation): frame = per-frame statistics (the reference "
        "test.py), running = running statistics (its --eval). [default: how the model trains: frame at "
        "--batch-size 1, running above; model.pt records the choice and why]",
        choices=TEST_NORMS,
    )
    test_dropout: bool = option(
        False, "Keep dropout on at test time, as the reference test.py (off: deterministic output)."
    )

    def test_time(self) -> tuple[str, bool]:
        """The validated (test_norm, test_dropout); an unset test_norm is an error here, since
        the run's setup fills it (``choose_test_norm``) before anything reads it."""
        return check_test_mode(self.test_norm, self.test_dropout, where="--test-norm/--test-dropout")


@dataclass
class RunResult:
    out: Path
    steps: int
    checkpoints: list[Path] = field(default_factory=list)
    state: Path | None = None
    log: Path | None = None
    samples: list[Path] = field(default_factory=list)
    seconds: float = 0.0
    method: Method | None = None  # the trained method object (networks, optimisers) for programmatic use
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)  # latest evaluation, by generator file
    eval_log: Path | None = None


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise I2IError(f"--device {name}: CUDA is not available on this machine (use --device cpu)")
    return torch.device(name)


def make_dataset(method_cls: type[Method], method_config: MethodConfig, config: TrainConfig) -> SizedDataset[Any]:
    """The method's dataset (``Method.make_dataset``: the folder layout it declares, or its own)."""
    check_direction(config.direction)
    if config.direction != "AtoB" and method_cls.layout not in ("paired", "unpaired"):
        raise I2IError(f"--direction {config.direction}: {method_cls.name} has no A/B dataset to swap")
    dataset = method_cls.make_dataset(config, method_config)  # its transform takes --preprocess itself
    applied = getattr(getattr(dataset, "transform", None), "preprocess", PREPROCESS_MODES[0])
    if applied != config.preprocess:  # a method's own dataset without the mode: say so, never train without it
        raise I2IError(f"--preprocess {config.preprocess}: {method_cls.name}'s dataset does not apply it")
    return dataset


def lr_lambda(total_steps: int, constant_fraction: float) -> Callable[[int], float]:
    """Multiplier 1 until the decay starts, then linear down to 0 at ``total_steps``."""
    decay_start = int(round(total_steps * constant_fraction))
    decay_len = max(1, total_steps - decay_start)

    def factor(step: int) -> float:
        return 1.0 if step < decay_start else max(0.0, 1.0 - (step - decay_start) / decay_len)

    return factor


STATE_FORMAT = "i2i-state/1"
_MIX = 1_000_003  # mixes (seed, epoch, index) into one seed


class SeededSamples(Dataset):
    """Per-sample randomness (crop, flip, unpaired partner) seeded by (seed, epoch, index).

    Keys are ``epoch * len + index``. The draws then depend neither on the worker count nor on
    what ran before, so a resumed run sees exactly the samples an uninterrupted run would have.
    The caller's torch RNG is saved and restored around each sample (matters with workers=0).
    From epoch ``late_from`` on (0-based), samples come from ``late`` instead: the same images
    with another transform (CUT's decay epochs); the epoch is in the key, so workers agree.
    """

    def __init__(
        self, dataset: SizedDataset[Any], seed: int, late: SizedDataset[Any] | None = None, late_from: int = 0
    ) -> None:
        self.dataset = dataset
        self.seed = seed
        self.n = len(dataset)
        self.late, self.late_from = late, late_from

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, key: int) -> Any:
        epoch, index = divmod(int(key), self.n)
        source = self.late if self.late is not None and epoch >= self.late_from else self.dataset
        state = torch.get_rng_state()
        torch.manual_seed(((self.seed * _MIX + epoch) * _MIX + index) % (2**63))
        try:
            return source[index]
        finally:
            torch.set_rng_state(state)


def decay_start(total_steps: int, method_config: MethodConfig) -> int:
    """The step at which the learning rate starts to decay (``lr_lambda``'s constant part ends)."""
    epochs_total = method_config.epochs + method_config.epochs_decay
    return int(round(total_steps * method_config.epochs / max(1, epochs_total)))


def training_samples(
    dataset: SizedDataset[Any], method_cls: type[Method], config: TrainConfig, steps_per_epoch: int, decay_from: int
) -> SeededSamples:
    """The seeded training samples; for a method with ``crop_free_decay`` (CUT, FastCUT, SN-DCR) the
    epochs that start at or after the decay step resize to the crop size without a random crop,
    as the official loaders do (load size = crop size once the epoch passes ``n_epochs``)."""
    if not method_cls.crop_free_decay:
        return SeededSamples(dataset, config.seed)
    late = without_resize_crop(dataset)
    return SeededSamples(dataset, config.seed, late, late_from=math.ceil(decay_from / steps_per_epoch))


class EpochBatches(Sampler[list[int]]):
    """Endless batches of SeededSamples keys, one shuffled order per epoch from (seed, epoch),
    starting at any step: resuming at step S continues with batch S of the same sequence."""

    def __init__(
        self, n: int, batch_size: int, seed: int, start_step: int = 0, rank: int = 0, world_size: int = 1
    ) -> None:
        self.n, self.batch_size, self.seed, self.start_step = n, batch_size, seed, start_step
        self.rank, self.world_size = rank, world_size
        # Full global batches only (drop_last), or one short batch when the data is smaller than one.
        self.per_epoch = max(1, n // (batch_size * world_size))

    def __iter__(self) -> Any:
        epoch, first = divmod(self.start_step, self.per_epoch)
        while True:
            order = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * _MIX + epoch)).tolist()
            for b in range(first, self.per_epoch):
                start = (b * self.world_size + self.rank) * self.batch_size  # this rank's shard of global batch b
                shard = order[start : start + self.batch_size] or order[: self.batch_size]
                yield [epoch * self.n + i for i in shard]
            epoch, first = epoch + 1, 0


def save_grid(rows: list[torch.Tensor], path: Path, max_images: int = 4) -> Path:
    """Rows of (B, 3, H, W) images in [-1, 1] → one PNG, a row per tensor, written atomically;
    a failure (disk full) is one I2IError naming the file."""
    lines = []
    for row in rows:
        images = row[:max_images].detach().float().cpu().clamp(-1, 1)
        pixels = ((images + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()  # (B, H, W, 3)
        lines.append(np.concatenate(list(pixels), axis=1))
    grid = np.concatenate(lines, axis=0)
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    if not ok:
        raise I2IError(f"cannot encode sample grid {path} as PNG")
    return write_bytes(path, encoded.tobytes(), "sample grid")


@contextlib.contextmanager
def test_mode(method: Method, config: TrainConfig) -> Iterator[None]:
    """While open, the method's generators are inference copies in the run's recorded test-time
    mode (``prepare_for_test``: per-frame or running BatchNorm statistics, dropout on or off), so
    sample grids and evaluation show what model.pt gives after export. The training networks
    themselves are left as they are (the copies share nothing with them)."""
    generators = {id(spec.net) for spec in method.generators()}
    swapped = {k: v for k, v in vars(method).items() if isinstance(v, torch.nn.Module) and id(v) in generators}
    test_norm, test_dropout = config.test_time()
    for name, net in swapped.items():
        setattr(method, name, prepare_for_test(net, test_norm=test_norm, test_dropout=test_dropout))
    try:
        yield
    finally:
        for name, net in swapped.items():
            setattr(method, name, net)


class SampleGrids:
    """The run's sample grids. One that cannot be written (disk full) must not end a run of hours:
    the first failure is a warning naming the file, later ones are skipped quietly, training goes on."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.written: list[Path] = []
        self.warned = False

    def write(self, method: Method, batch: Any, step: int, config: TrainConfig) -> None:
        method.train(False)
        try:
            with test_mode(method, config):
                rows = method.sample_rows(batch)
            self.written.append(save_grid(rows, self.folder / f"step_{step:06d}.png"))
        except I2IError as exc:
            if not self.warned:
                click.echo(f"warning: {exc.format_message()}; training goes on, without this and later grids", err=True)
                self.warned = True
        finally:
            method.train(True)


def _worker_error(error: I2IError, note: str = "") -> I2IError:
    """``error`` as one line, plus ``note``. A DataLoader worker's I2IError reaches the main process
    with the worker's traceback as its message ("Caught I2IError in DataLoader worker process 0.
    Original Traceback ..."): its own line, the one that names the image, is kept."""
    prefix = f"{type(error).__module__}.{type(error).__qualname__}: "
    lines = error.message.splitlines()
    original = [line[len(prefix) :] for line in lines if line.startswith(prefix)]
    message = original[-1] if len(lines) > 1 and original else error.message
    return I2IError(message + note)


class _RankInterrupted(Interrupted):
    """Ctrl-C or SIGTERM on a rank other than 0: rank 0 saves and says so, this rank leaves quietly
    (exit code 130 or 143 all the same), so a distributed run reports its interruption once."""

    def show(self, file: IO[Any] | None = None) -> None:
        pass


def _worker_leaves_on_sigterm(worker_id: int) -> None:
    """A DataLoader worker treats SIGTERM as Ctrl-C: it exits quietly, as torch's workers do on
    SIGINT, and its process's main thread saves. Killed by the signal instead (the default), it
    would make torch raise "DataLoader worker is killed by signal" in the main thread mid-save
    when SIGTERM reaches the whole process group (torchrun's launcher, ``kill -- -PGID``)."""

    def leave(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, leave)


def _rng_state() -> dict[str, Any]:
    """RNG states as tensors and plain lists, so state.pt loads with weights_only=True."""
    version, internal, gauss = random.getstate()
    numpy_state = np.random.get_state(legacy=True)
    assert isinstance(numpy_state, tuple)  # legacy=True: the global MT19937's state is a tuple, never a dict
    name, keys, pos, has_gauss, cached = numpy_state
    return {
        "python": [version, list(internal), gauss],
        "numpy": [name, torch.from_numpy(np.asarray(keys, dtype=np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])


def save_run(
    method: Method,
    config: TrainConfig,
    method_config: MethodConfig,
    step: int,
    schedulers: dict[str, Any],
    out: Path,
    metrics: dict[str, dict[str, Any]] | None = None,
    test_norm_reason: str | None = None,
) -> tuple[list[Path], Path]:
    train_config = {
        "method": method.name,
        "train": asdict(config),
        "method_config": asdict(method_config),
        "step": step,
    }
    test_norm, test_dropout = config.test_time()
    paths = []
    for spec in method.generators():
        ckpt = make_checkpoint(
            spec.net,
            arch=spec.arch,
            arch_kwargs=spec.arch_kwargs,
            method=method.name,
            direction=spec.direction,
            train_config=train_config,
            metrics=(metrics or {}).get(spec.filename),
            test_norm=test_norm,
            test_dropout=test_dropout,
            test_norm_reason=test_norm_reason,
            teacher=spec.teacher,
        )
        paths.append(atomic_save(ckpt, out / spec.filename))
    state = {
        "format": STATE_FORMAT,
        "method": method.name,
        "step": step,
        "networks": {k: v.state_dict() for k, v in method.networks().items()},
        "optimizers": {k: v.state_dict() for k, v in method.optimizers().items()},
        "schedulers": {k: v.state_dict() for k, v in schedulers.items()},
        "extra": method.extra_state(),
        "rng": _rng_state(),
    }
    latest = atomic_save(state, out / "state.pt")
    _keep_history(latest, out / "checkpoints", step, config.keep_last)
    return paths, latest


def _keep_history(latest: Path, folder: Path, step: int, keep: int) -> None:
    """A hard link (or copy) of each saved state, the newest ``keep`` kept: a fallback for --resume."""
    if keep <= 0:
        return
    folder.mkdir(exist_ok=True)
    target = folder / f"state_{step:06d}.pt"
    target.unlink(missing_ok=True)
    try:
        os.link(latest, target)
    except OSError:
        with open(latest, "rb") as src, atomic_file(target) as dst:
            shutil.copyfileobj(src, dst)
    for old in sorted(folder.glob("state_*.pt"))[:-keep]:
        old.unlink(missing_ok=True)


def _autocast(device: torch.device, amp: str) -> Any:
    if amp not in AMP_DTYPES:
        raise I2IError(f"--amp {amp!r}: choose one of {', '.join(AMP_DTYPES)}")
    dtype = AMP_DTYPES[amp]
    if dtype is None:
        return contextlib.nullcontext()
    if dtype == torch.float16 and device.type != "cuda":
        raise I2IError("--amp fp16 needs a CUDA device; use --amp bf16 on the CPU")
    return torch.autocast(device_type=device.type, dtype=dtype)


def _tensorboard(out: Path) -> Any:
    """A SummaryWriter when tensorboard is installed, else None (it is optional)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(log_dir=str(out / "tensorboard"))


def train(method_name: str, method_config: MethodConfig, config: TrainConfig) -> RunResult:
    method_cls = get_method(method_name)
    env, device = distributed.setup(resolve_device(config.device))
    try:
        return _train(method_cls, method_config, config, env, device)
    finally:
        distributed.teardown(env)


# DataLoader workers hand batches over through multiprocessing's resource sharer, which listens on a
# Unix socket at TMPDIR/pymp-XXXXXXXX/listener-XXXXXXXX. Past the kernel's limit on socket paths the
# bind fails in a worker's background thread and the loader waits for that batch forever.
def socket_path_max() -> int | None:
    """The longest Unix socket path here (sun_path's size less its NUL); None on Windows, whose
    DataLoader workers use no Unix sockets."""
    if sys.platform == "win32":
        return None
    return 103 if sys.platform == "darwin" else 107


def check_worker_tmpdir(workers: int) -> None:
    """Refuse ``--workers N`` up front when the temp folder is too long a path for the workers' sockets."""
    limit = socket_path_max()
    if workers == 0 or limit is None:
        return
    folder = tempfile.gettempdir()
    longest = len(os.fsencode(os.path.join(folder, "pymp-" + "x" * 8, "listener-" + "x" * 8)))
    if longest > limit:
        raise I2IError(
            f"--workers {workers}: the temp folder {folder} is too long a path for the data workers' sockets "
            f"({longest} > {limit} bytes); set TMPDIR to a shorter folder, or train with --workers 0"
        )


def choose_test_norm(config: TrainConfig, method_cls: type[Method]) -> tuple[str, str]:
    """The run's test-time BatchNorm mode and why: ``--test-norm`` when given, else the method's
    default when it has one, else how the model trains (``test_norm_for_batch``: per-frame
    statistics at batch size 1, running statistics above; per process in a distributed run, whose
    BatchNorm layers each see their own process's batch)."""
    given = config.test_norm
    if given is not None:
        return given, f"--test-norm {given} given explicitly (trained at batch size {config.batch_size})"
    default = method_cls.train_defaults.get("test_norm")
    if default is not None:
        return default, method_cls.test_norm_default_reason or f"the {method_cls.name} method's default"
    return test_norm_for_batch(config.batch_size)


def with_method_defaults(config: TrainConfig, method_cls: type[Method]) -> TrainConfig:
    """``config`` with the fields left unset (None) given the method's ``train_defaults``, and an
    unset test_norm chosen by ``choose_test_norm``, so the Python API trains as ``i2i-train METHOD``."""
    unset = {name: value for name, value in method_cls.train_defaults.items() if getattr(config, name) is None}
    if config.test_norm is None:
        unset["test_norm"] = choose_test_norm(config, method_cls)[0]
    return dataclasses.replace(config, **unset) if unset else config


def _seed_everything(config: TrainConfig) -> None:
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    if config.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


class _Run:
    """One run's moving parts: the method, its schedule and data, the step, and the files it writes
    (checkpoints, log.jsonl, TensorBoard, sample grids); only rank 0 (``main``) writes files."""

    def __init__(self, method: Method, config: TrainConfig, method_config: MethodConfig, env: distributed.DistEnv):
        self.method, self.config, self.method_config, self.env = method, config, method_config, env
        self.out, self.main = Path(config.out), env.is_main
        self.step = self.saved_step = 0  # saved_step: the step model.pt and state.pt hold (0: none yet)
        self.schedulers: dict[str, Any] = {}
        self.total_steps = self.steps_per_epoch = 1
        self.samples: SeededSamples | None = None
        self.sample_batch: Any = None
        self.result = RunResult(out=self.out, steps=0, log=self.out / "log.jsonl", method=method)
        self.grids = SampleGrids(self.out / "samples")
        self.result.samples = self.grids.written
        self.log: IO[str] | None = None
        self.board: Any = None
        self.test_norm_reason: str | None = None  # why config.test_norm (choose_test_norm), for model.pt
        self.seen_images, self.window_start = 0, time.perf_counter()

    def save(self) -> tuple[list[Path], Path]:
        saved = save_run(
            self.method,
            self.config,
            self.method_config,
            self.step,
            self.schedulers,
            self.out,
            self.result.metrics,
            self.test_norm_reason,
        )
        self.saved_step = self.step
        return saved

    def loader(self) -> DataLoader:
        """Batches from the current step on, sharded for this rank."""
        assert self.samples is not None
        env, config = self.env, self.config
        sampler = EpochBatches(
            len(self.samples),
            config.batch_size,
            config.seed,
            start_step=self.step,
            rank=env.rank,
            world_size=env.world_size,
        )
        return DataLoader(
            self.samples,
            batch_sampler=sampler,
            num_workers=config.workers,
            pin_memory=self.method.device.type == "cuda",
            persistent_workers=config.workers > 0,
            worker_init_fn=_worker_leaves_on_sigterm,
            collate_fn=collate_same_size,
        )

    def write_config(self) -> None:
        record = {
            "method": self.method.name,
            "train": asdict(self.config),
            "method_config": asdict(self.method_config),
            "world_size": self.env.world_size,
        }
        atomic_write(self.out / "config.json", json.dumps(record, indent=2))

    def next_batch(self, batches: Any, bar: tqdm) -> Any:
        """The next batch; an image damaged past its header (read for the first time) saves the
        steps done, as Ctrl-C does, then is one error naming the image."""
        try:
            return next(batches)
        except I2IError as error:
            bar.close()
            if self.main and self.step > self.saved_step:
                self.save()
                note = f"; checkpoint and state of step {self.step} saved in {self.out} (continue with --resume)"
                raise _worker_error(error, note) from None
            raise _worker_error(error) from None

    def record(self, losses: dict[str, float], images: int, bar: tqdm) -> None:
        """One log.jsonl line (and TensorBoard scalars) every ``log_every`` steps and at the end."""
        self.seen_images += images
        if not all(np.isfinite(v) for v in losses.values()):
            raise I2IError(f"loss became NaN/Inf at step {self.step}: {losses}; lower --lr or check the data")
        if self.log is None or (self.step % self.config.log_every and self.step != self.total_steps):
            return
        now = time.perf_counter()
        rate, self.seen_images, self.window_start = self.seen_images / max(now - self.window_start, 1e-9), 0, now
        record = {
            "step": self.step,
            "epoch": self.step // self.steps_per_epoch,
            "lr": next(iter(self.method.optimizers().values())).param_groups[0]["lr"],
            "images_per_s": round(rate, 2),
            **{k: round(v, 5) for k, v in losses.items()},
        }
        self.log.write(json.dumps(record) + "\n")
        self.log.flush()
        if self.board is not None:
            for key, value in record.items():
                if key not in ("step", "epoch"):
                    self.board.add_scalar(key, value, self.step)
        bar.set_postfix({k: f"{v:.3f}" for k, v in list(losses.items())[:3]}, refresh=False)

    def checkpoint(self, evaluator: Evaluator | None) -> None:
        """Sample grid, evaluation and intermediate save, each when due."""
        step, last = self.step, self.step == self.total_steps
        if self.main and (step % self.config.sample_every == 0 or last):
            self.grids.write(self.method, self.sample_batch, step, self.config)
        if evaluator is not None and evaluator.due(step, self.total_steps):
            with test_mode(self.method, self.config):
                self.result.metrics = evaluator.run(self.method, step, self.board)
        if self.main and step % self.config.save_every == 0 and not last:
            self.save()


def _setup(
    method_cls: type[Method],
    method_config: MethodConfig,
    config: TrainConfig,
    env: distributed.DistEnv,
    device: torch.device,
) -> _Run:
    """Data, method, LR schedule and sample images; the state of --resume; config.json."""
    test_norm_reason = choose_test_norm(config, method_cls)[1]
    config = with_method_defaults(config, method_cls)  # the run (run.config) sees only the filled-in config
    config.test_time()  # a bad --test-norm/--test-dropout stops the run before any work
    check_worker_tmpdir(config.workers)
    dataset = make_dataset(method_cls, method_config, config)  # bad data and options are said first
    check_stackable(dataset, config.batch_size)
    if env.is_main:  # before the run writes a file (distill claims it before its teacher pass)
        claim_run_folder(Path(config.out), config.resume, config.overwrite)
    size = len(dataset)
    if size == 0:
        raise I2IError(f"dataset {config.data} is empty")
    method = method_cls(method_config, device)
    method.data_direction = config.direction
    if config.amp == "fp16":
        method.scaler = torch.amp.GradScaler(device.type)
    distributed.broadcast_state(method.networks(), env)
    run = _Run(method, config, method_config, env)
    run.test_norm_reason = test_norm_reason
    run.steps_per_epoch = EpochBatches(size, config.batch_size, config.seed, world_size=env.world_size).per_epoch
    epochs_total = method_config.epochs + method_config.epochs_decay
    run.total_steps = config.max_steps or epochs_total * run.steps_per_epoch
    factor = lr_lambda(run.total_steps, method_config.epochs / max(1, epochs_total))
    run.schedulers = {k: torch.optim.lr_scheduler.LambdaLR(o, factor) for k, o in method.optimizers().items()}
    run.samples = training_samples(
        dataset, method_cls, config, run.steps_per_epoch, decay_start(run.total_steps, method_config)
    )
    if run.main:
        run.out.mkdir(parents=True, exist_ok=True)
    # Fixed sample images for the grids, drawn before any RNG state is restored (seeded per sample). Through a
    # DataLoader, whose iterator draws its base seed from torch's RNG, so the run's later draws stay as they were.
    run.sample_batch = next(
        iter(DataLoader(run.samples, batch_size=min(4, len(run.samples)), shuffle=False, collate_fn=collate_first_size))
    )
    if config.resume:
        run.step = run.saved_step = _resume(method, run.schedulers, run.out)
        if run.main:
            forget_after(run.out, run.step)
    if run.main:
        run.write_config()
    return run


def _heldout_evaluator(
    method_cls: type[Method], config: TrainConfig, device: torch.device, env: distributed.DistEnv
) -> Evaluator | None:
    """The evaluator of a ``labels_heldout`` method (distill): on the held-out pairs it labelled."""
    pairs = method_cls.heldout_pairs(config)
    root, side = pairs if pairs is not None else (None, None)
    return Evaluator.for_run(config, "paired", device, env.is_main, pairs=root, size=side)


def _train(
    method_cls: type[Method],
    method_config: MethodConfig,
    config: TrainConfig,
    env: distributed.DistEnv,
    device: torch.device,
) -> RunResult:
    _seed_everything(config)
    autocast = _autocast(device, config.amp)
    # Evaluation options and files (Inception weights) are checked before any work; rank 0 evaluates.
    evaluator = None if method_cls.labels_heldout else Evaluator.for_run(config, method_cls.layout, device, env.is_main)
    run = _setup(method_cls, method_config, config, env, device)  # distill: its held-out pairs labelled now
    evaluator = _heldout_evaluator(method_cls, run.config, device, env) if method_cls.labels_heldout else evaluator
    method, start = run.method, time.perf_counter()
    loader = run.loader()
    method.train(True)
    bar = tqdm(
        total=run.total_steps,
        initial=run.step,
        desc=f"train {method.name}",
        unit="step",
        disable=not (config.progress and run.main),
        dynamic_ncols=True,
    )
    run.board = _tensorboard(run.out) if run.main else None
    try:
        with contextlib.ExitStack() as stack:
            run.log = stack.enter_context(open(run.out / "log.jsonl", "a")) if run.main else None
            stack.enter_context(distributed.synced_gradients(env))
            batches = iter(loader)
            while run.step < run.total_steps:
                batch = run.next_batch(batches, bar)
                distributed.broadcast_state(method.networks(), env, parameters=False)
                with autocast:
                    losses = method.train_step(batch)
                if method.scaler is not None:
                    method.scaler.update()
                for sched in run.schedulers.values():
                    sched.step()
                run.step += 1
                bar.update(1)
                run.record(losses, int(batch["source"].shape[0]) * env.world_size, bar)
                run.checkpoint(evaluator)
    except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM (Terminated) from the CLI's handler
        bar.close()
        if not run.main:
            raise _RankInterrupted(f"rank {env.rank} stopped at step {run.step}; rank 0 saves", cause=stop) from None
        run.save()
        saved = f"checkpoint and state of step {run.step} saved in {run.out} (continue with --resume)"
        raise Interrupted(saved, cause=stop) from None
    finally:
        if run.board is not None:
            run.board.close()
    bar.close()
    result = run.result
    if run.main:
        result.checkpoints, result.state = run.save()
        result.eval_log = evaluator.log if evaluator is not None and evaluator.log.exists() else None
    result.steps, result.seconds = run.step, time.perf_counter() - start
    return result


def _read_state(path: Path) -> dict[str, Any] | None:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - truncated, corrupt, not a torch file: all mean "try the previous one"
        return None
    return state if isinstance(state, dict) and state.get("format") == STATE_FORMAT else None


def _resume(method: Method, schedulers: dict[str, Any], out: Path) -> int:
    """Load the newest readable state: state.pt, else the newest of checkpoints/ (with a warning)."""
    candidates = [out / "state.pt", *sorted((out / "checkpoints").glob("state_*.pt"), reverse=True)]
    candidates = [p for p in candidates if p.exists()]
    if not candidates:
        raise I2IError(f"--resume: no state.pt in {out}")
    for path in candidates:
        state = _read_state(path)
        if state is not None:
            break
        click.echo(f"warning: {path} is corrupt or truncated; trying an earlier state", err=True)
    else:
        raise I2IError(f"--resume: no readable state in {out} (tried {', '.join(p.name for p in candidates)})")
    if path != candidates[0]:
        click.echo(f"warning: resuming from {path}", err=True)
    if state.get("method") != method.name:
        raise I2IError(f"--resume: {path} was written by method {state.get('method')!r}, not {method.name!r}")
    for k, net in method.networks().items():
        net.load_state_dict(state["networks"][k])
    for k, opt in method.optimizers().items():
        opt.load_state_dict(state["optimizers"][k])
    for k, sched in schedulers.items():
        sched.load_state_dict(state["schedulers"][k])
    method.load_extra_state(state.get("extra", {}))
    _set_rng_state(state["rng"])
    return int(state["step"])
