"""Training methods, registered by name: ``build_method("cyclegan", config, device)``.

A method owns its networks, losses and optimisers and implements one training step; the loop in
``i2i.train.loop`` does everything shared (data, schedule, logging, samples, checkpoints).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

import torch
from torch import nn

from i2i.errors import I2IError
from i2i.train.losses.temporal import TemporalLoss
from i2i.train.options import option

if TYPE_CHECKING:
    from i2i.train.data import SizedDataset
    from i2i.train.loop import TrainConfig

_SWAPPED = {"AtoB": "BtoA", "BtoA": "AtoB"}


@dataclass(frozen=True)
class MethodConfig:
    """Fields every method config has; each method subclasses this with its own defaults (a field
    redefined with only a new default keeps the help and bounds given here)."""

    epochs: int = option(100, "Epochs at the initial learning rate.", minimum=0)
    epochs_decay: int = option(100, "Epochs of linear decay of the learning rate to zero.", minimum=0)
    lr: float = option(2e-4, "Adam learning rate.", above=0)
    beta1: float = option(0.5, "Adam beta1.")
    lambda_temporal: float = option(
        0.0,
        "Weight of the temporal-stability loss ||G(W(x)+noise) - W(G(x))||^2 (random ±2 px, ±1°, ±3 % affine W; "
        "Eilertsen et al. 2019); 0 = off.",
        minimum=0,
    )


@dataclass
class GeneratorSpec:
    """A generator a method exports: written as ``<filename>`` in the run folder."""

    filename: str
    net: nn.Module
    arch: str
    arch_kwargs: dict[str, Any]
    direction: str
    teacher: dict[str, Any] | None = None  # a distilled student's teacher (``checkpoint.teacher_record``)


ConfigT = TypeVar("ConfigT", bound=MethodConfig)


class Method(Generic[ConfigT]):
    """Base of the training methods, generic over the method's config class (``config_class``)."""

    name: ClassVar[str]
    config_class: ClassVar[type[MethodConfig]]
    layout: ClassVar[str]  # "paired" (train/A + train/B, or aligned A|B in train/) or "unpaired" (trainA, trainB)
    summary: ClassVar[str]
    needs_data: ClassVar[bool] = True  # False: the method reads its own folders, and has no --data option
    data_help: ClassVar[str] = ""  # the method's own help for --data (empty: TrainConfig's)
    # True: the decay epochs resize to the crop size without random crops (the official CUT loaders).
    crop_free_decay: ClassVar[bool] = False
    # TrainConfig fields the method does not read (stig: no crops or flips): left out of its command's options.
    unused_train_options: ClassVar[tuple[str, ...]] = ()
    # TrainConfig fields this method fills in when left unset (None), on the command line and in
    # ``train()`` alike; a value given explicitly wins. An unset test_norm follows the batch size
    # (``i2i.train.loop.choose_test_norm``) unless a method names one here.
    train_defaults: ClassVar[Mapping[str, Any]] = MappingProxyType({})
    test_norm_default_reason: ClassVar[str] = ""  # why train_defaults names a test_norm (model.pt records it)
    # True: the method labels held-out images itself (distill: the teacher translates them) and is
    # evaluated against those pairs (``heldout_pairs``), not against --eval-data / DATA's test split.
    labels_heldout: ClassVar[bool] = False

    def __init__(self, config: ConfigT, device: torch.device) -> None:
        self.config = config
        self.device = device
        self.scaler: torch.amp.GradScaler | None = None  # set by the loop for --amp fp16
        self.data_direction = "AtoB"  # the data's --direction, set by the loop: BtoA made B the source
        self._temporal_loss: TemporalLoss | None = None  # built at the first temporal_term

    def temporal_term(
        self,
        generator: Callable[[torch.Tensor], torch.Tensor],
        source: torch.Tensor,
        fake_target: torch.Tensor | None = None,
    ) -> torch.Tensor | None:
        """``--lambda-temporal`` x the temporal-stability loss of ``generator`` on ``source``
        (``i2i.train.losses.temporal``; ``fake_target``: ``generator(source)`` when the step has it,
        which saves a forward pass); None when the weight is 0 (the term is off)."""
        weight = self.config.lambda_temporal
        if weight == 0:
            return None
        if self._temporal_loss is None:
            self._temporal_loss = TemporalLoss()
        loss: torch.Tensor = self._temporal_loss(generator, source, fake_target)
        return loss * weight

    @classmethod
    def make_dataset(cls, config: TrainConfig, method_config: ConfigT) -> SizedDataset[Any]:
        """The training set: the folder layout ``layout`` names, read in ``config.direction``.
        Methods with other data (style, distill, stig) override this."""
        from i2i.train.data import PairedFolderDataset, UnpairedFolderDataset

        if cls.layout not in ("paired", "unpaired"):
            raise NotImplementedError(f"method {cls.name!r} (layout {cls.layout!r}) must define make_dataset")
        check_crop_fits(config)
        dataset = PairedFolderDataset if cls.layout == "paired" else UnpairedFolderDataset
        return dataset(
            config.data,
            phase="train",
            load_size=config.load_size,
            crop_size=config.crop_size,
            flip=config.flip,
            train=True,
            direction=config.direction,
            preprocess=config.preprocess,
        )

    @classmethod
    def heldout_pairs(cls, config: TrainConfig) -> tuple[Path, int] | None:
        """Where a ``labels_heldout`` method keeps its held-out (source, target) pairs, written by
        its ``make_dataset`` (an ``Evaluator`` set: test/A + test/B), and their square side; None
        when it has none (and for the other methods)."""
        return None

    def direction_of(self, trained: str) -> str:
        """A generator's direction in the dataset's own A/B naming: ``trained`` (AtoB = source to
        target) as is, swapped when ``--direction BtoA`` made B the source. What model.pt records."""
        return trained if self.data_direction == "AtoB" else _SWAPPED[trained]

    def backward(self, loss: torch.Tensor) -> None:
        """loss.backward(), scaled when fp16 mixed precision is on (small gradients would underflow)."""
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """optimizer.step(), through the gradient scaler when one is set (it skips inf/NaN steps)."""
        if self.scaler is not None:
            self.scaler.step(optimizer)
        else:
            optimizer.step()

    # Subclasses fill these in.
    def train_step(self, batch: dict[str, Any]) -> dict[str, float]:
        raise NotImplementedError

    def generators(self) -> list[GeneratorSpec]:
        raise NotImplementedError

    def networks(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        raise NotImplementedError

    @torch.no_grad()
    def sample_rows(self, batch: dict[str, Any]) -> list[torch.Tensor]:
        """Image rows for the sample grid, each (B, 3, H, W) in [-1, 1]."""
        raise NotImplementedError

    def extra_state(self) -> dict[str, Any]:
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    def train(self, mode: bool = True) -> None:
        for net in self.networks().values():
            net.train(mode)


# The --preprocess modes that resize to --load-size before a --crop-size crop (the others crop the
# image as it is, or do not crop: the load size there is a width or unused).
RESIZE_THEN_CROP = ("resize_and_crop", "scale_width_and_crop")


def check_crop_fits(config: TrainConfig) -> None:
    """Refuse a crop larger than the load size, in the modes that resize to it before cropping."""
    if config.preprocess in RESIZE_THEN_CROP and config.crop_size > config.load_size:
        raise I2IError(
            f"--crop-size {config.crop_size} is larger than --load-size {config.load_size}, which "
            f"--preprocess {config.preprocess} resizes to before it crops; raise --load-size or lower --crop-size"
        )


METHODS: dict[str, type[Method]] = {}


def register_method(name: str) -> Callable[[type[Method]], type[Method]]:
    def deco(cls: type[Method]) -> type[Method]:
        if name in METHODS:
            raise ValueError(f"method {name!r} registered twice")
        cls.name = name
        METHODS[name] = cls
        return cls

    return deco


def get_method(name: str) -> type[Method]:
    if name not in METHODS:
        raise I2IError(f"unknown method {name!r}; valid: {', '.join(sorted(METHODS))}")
    return METHODS[name]


def config_to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def total(terms: Iterable[torch.Tensor]) -> torch.Tensor:
    """The sum of loss terms, added in order as ``sum(terms)`` would: a tensor (``sum`` starts from
    the int 0, so its type is ``Tensor | int``). At least one term."""
    result, *rest = terms
    for term in rest:
        result = result + term
    return result


def set_requires_grad(nets: list[nn.Module], flag: bool) -> None:
    """Freeze the discriminators while the generator steps (saves their gradient work)."""
    for net in nets:
        for p in net.parameters():
            p.requires_grad_(flag)


def _import_all() -> None:
    """Import every module of this package: a method is registered by its file existing."""
    import importlib
    import pkgutil

    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")


_import_all()
