"""CUT and FastCUT: contrastive unpaired translation (Park, Efros, Zhang, Zhu, ECCV 2020).

One generator, no cycle. A patch of G(x) must be closer to the input patch at the same place than
to the other patches of x, measured in G's own encoder features (multilayer PatchNCE, paper Eq. 5)::

    L = λ_GAN·L_GAN(G, D, X, Y) + λ_NCE·L_PatchNCE(G, H, X) + λ_NCE·L_PatchNCE(G, H, Y)   (paper Eq. 6)

The last term is the identity NCE on target images (G(y) should keep y's patches), CUT only; the
reference halves the sum of the two NCE terms. FastCUT drops the identity term, raises λ_NCE to 10
and trains with flip equivariance: with p = 0.5 the input is flipped before G and the output's
features are flipped back, so G(flip x) must correspond patch for patch to flip G(x).

Defaults follow taesungp/contrastive-unpaired-translation (``cut_model.py``):

=====================  =====  =======
option                 CUT    FastCUT
=====================  =====  =======
lambda_gan             1      1
lambda_nce             1      10
nce_idt                True   False
flip_equivariance      False  True
epochs + epochs_decay  200+200  150+50
=====================  =====  =======

Shared: NCE layers 0,4,8,12,16 of the anti-aliased ResNet-9 generator (``cut_resnet``), 256
patches, MLP head of width 256, τ = 0.07, negatives from the same image only, LSGAN, anti-aliased
PatchGAN, Adam(2e-4, β = 0.5, 0.999) for G, D and the head, xavier-normal init (gain 0.02).

Data: during the learning-rate decay epochs (epoch > ``n_epochs``) the official loaders set the load
size to the crop size, so images are resized to the crop size with no random crop (flips stay);
``crop_free_decay`` does the same here, switching at the first epoch that starts at or after the
decay step (exactly epoch ``epochs`` on the full schedule).

The head's MLPs get their widths from G's features, so they are made on the first batch (the
reference's ``data_dependent_initialize``) together with their optimiser. That optimiser is not in
the loop's LR schedulers (they exist before the first batch); its learning rate is copied from the
generator's at every step, which is the reference's schedule (all optimisers share one policy).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import torch

from i2i.errors import I2IError
from i2i.train.losses.gan import GAN_MODES, GANLoss
from i2i.train.losses.patchnce import PatchNCELoss, PatchSampleMLP
from i2i.train.methods import GeneratorSpec, Method, MethodConfig, register_method, set_requires_grad, total
from i2i.train.nets import build_net
from i2i.train.nets.cut_resnet import AntialiasedPatchGAN, CutResnetGenerator, xavier_init
from i2i.train.nets.norm import NORMS
from i2i.train.options import option


def parse_layers(text: str) -> tuple[int, ...]:
    """'0,4,8,12,16' → (0, 4, 8, 12, 16); ascending and unique, as the feature order assumes."""
    try:
        layers = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise I2IError(f"--nce-layers {text!r}: expected comma-separated module indices such as 0,4,8,12,16") from None
    if not layers or list(layers) != sorted(set(layers)) or layers[0] < 0:
        raise I2IError(f"--nce-layers {text!r}: give at least one index, ascending, without repeats")
    return layers


@dataclass(frozen=True)
class CUTConfig(MethodConfig):
    epochs: int = 200
    epochs_decay: int = 200
    ngf: int = option(64, "Generator width (filters in the first layer).", minimum=1)
    ndf: int = option(64, "Discriminator width.", minimum=1)
    n_blocks: int = option(9, "Residual blocks in the generator.", minimum=0)
    n_layers_d: int = option(3, "PatchGAN depth (3 = 70x70 patches).", minimum=1)
    norm: str = option(
        "instance", "Normalisation: batch, instance or none (none: no conv biases, as the reference).", choices=NORMS
    )
    dropout: bool = option(False, "Dropout in the generator.")
    antialias: bool = option(
        True, "Anti-aliased (blur-pool) downsampling in G and D; off = strided convs (CUT --no_antialias)."
    )
    antialias_up: bool = option(
        True, "Fixed-kernel anti-aliased upsampling in G; off = transposed convs (CUT --no_antialias_up)."
    )
    init_gain: float = option(0.02, "Gain of the xavier-normal weight init.")
    gan_mode: str = option("lsgan", "Adversarial loss: lsgan, vanilla or hinge.", choices=GAN_MODES)
    lambda_gan: float = option(1.0, "Weight of the adversarial term.")
    lambda_nce: float = option(1.0, "Weight of the PatchNCE loss.")
    nce_idt: bool = option(True, "Identity PatchNCE on target images, NCE(y, G(y)) (CUT yes, FastCUT no).")
    nce_layers: str = option(
        "0,4,8,12,16", "Generator module indices whose features PatchNCE compares (comma-separated, ascending)."
    )
    num_patches: int = option(256, "Patches sampled per image and layer for PatchNCE.", minimum=1)
    nce_channels: int = option(256, "Width of the PatchNCE projection MLP (reference netF_nc).", minimum=1)
    nce_temperature: float = option(0.07, "PatchNCE softmax temperature.", above=0)
    nce_minibatch_negatives: bool = option(
        False, "Draw PatchNCE negatives from the whole minibatch, not only the same image."
    )
    flip_equivariance: bool = option(
        False, "FastCUT: flip the input with p=0.5 and require G to commute with the flip."
    )

    def __post_init__(self) -> None:
        parse_layers(self.nce_layers)
        if self.lambda_nce <= 0:
            raise I2IError("--lambda-nce must be > 0: without PatchNCE this is a plain GAN (use cyclegan)")
        if self.num_patches < 1 or self.nce_channels < 1 or self.nce_temperature <= 0:
            raise I2IError("--num-patches and --nce-channels must be >= 1 and --nce-temperature > 0")

    @property
    def layer_ids(self) -> tuple[int, ...]:
        return parse_layers(self.nce_layers)


CUTConfigT = TypeVar("CUTConfigT", bound=CUTConfig)


@register_method("cut")
class CUT(Method[CUTConfigT]):
    config_class: ClassVar[type[MethodConfig]] = CUTConfig
    layout = "unpaired"
    summary = "unpaired, one generator: anti-aliased ResNet, PatchNCE + identity NCE, LSGAN (Park et al. 2020)"
    arch: ClassVar[str] = "cut_resnet"
    crop_free_decay: ClassVar[bool] = True  # FastCUT and SN-DCR inherit it, as their loaders do

    def __init__(self, config: CUTConfigT, device: torch.device) -> None:
        super().__init__(config, device)
        self.g_kwargs: dict[str, Any] = dict(
            input_nc=3,
            output_nc=3,
            ngf=config.ngf,
            norm=config.norm,
            use_dropout=config.dropout,
            n_blocks=config.n_blocks,
            antialias=config.antialias,
            antialias_up=config.antialias_up,
        )
        generator = xavier_init(build_net(self.arch, **self.g_kwargs), config.init_gain)
        assert isinstance(generator, CutResnetGenerator)  # sn_resnet subclasses it
        self.generator = generator.to(device)
        n_modules = len(self.generator.model)
        if max(config.layer_ids) >= n_modules:
            raise I2IError(
                f"--nce-layers {config.nce_layers}: this generator has modules 0..{n_modules - 1} "
                f"(n_blocks={config.n_blocks})"
            )
        if config.antialias:
            disc: torch.nn.Module = AntialiasedPatchGAN(3, ndf=config.ndf, n_layers=config.n_layers_d, norm=config.norm)
        else:
            disc = build_net("patchgan", input_nc=3, ndf=config.ndf, n_layers=config.n_layers_d, norm=config.norm)
        self.discriminator = xavier_init(disc, config.init_gain).to(device)
        self.projection = PatchSampleMLP(
            config.nce_channels, config.init_gain, qs_attn_deepest=self._qs_layers(config)
        ).to(device)
        self.gan_loss = GANLoss(config.gan_mode)
        self.nce_loss = PatchNCELoss(config.nce_temperature, config.nce_minibatch_negatives)
        betas = (config.beta1, 0.999)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=config.lr, betas=betas)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=config.lr, betas=betas)
        self.opt_f: torch.optim.Optimizer | None = None  # made with the head, on the first batch

    def _qs_layers(self, config: CUTConfig) -> int:
        """How many of the deepest NCE layers pick patches by QS-Attn (CUT: none, random patches)."""
        return 0

    # ------------------------------------------------------------------ first batch

    @torch.no_grad()
    def data_dependent_initialize(self, source: torch.Tensor) -> None:
        """Build the projection head for the widths of G's NCE features, then its optimiser."""
        cfg = self.config
        feats = self.generator.encode(source[:1], cfg.layer_ids)
        self.projection.build([f.shape[1] for f in feats])
        self._projection_optimizer()

    def _projection_optimizer(self) -> torch.optim.Optimizer:
        if self.opt_f is None:
            betas = (self.config.beta1, 0.999)
            self.opt_f = torch.optim.Adam(self.projection.parameters(), lr=self.config.lr, betas=betas)
        return self.opt_f

    # ------------------------------------------------------------------ losses

    def nce(self, source: torch.Tensor, output: torch.Tensor, flipped: bool) -> torch.Tensor:
        """Mean over layers of λ_NCE·PatchNCE(queries from G(·)'s features, keys from the input's)."""
        cfg = self.config
        layers = cfg.layer_ids
        feat_q = self.generator.encode(output, layers)
        if flipped:  # undo the input flip so that query and key patches are at the same places
            feat_q = [f.flip(3) for f in feat_q]
        feat_k = self.generator.encode(source, layers)
        pooled_k, sampling = self.projection(feat_k, cfg.num_patches)
        pooled_q, _ = self.projection(feat_q, cfg.num_patches, sampling)
        return total(self.nce_loss(q, k) * cfg.lambda_nce for q, k in zip(pooled_q, pooled_k)) / len(layers)

    def extra_generator_losses(
        self, source: torch.Tensor, target: torch.Tensor, fake_target: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Further weighted generator terms; subclasses (SN-DCR) add theirs here."""
        return {}

    # ------------------------------------------------------------------ step

    def train_step(self, batch: dict[str, Any]) -> dict[str, float]:
        cfg = self.config
        source = batch["source"].to(self.device, non_blocking=True)  # (B, 3, H, W)
        target = batch["target"].to(self.device, non_blocking=True)
        if not self.projection.built:
            self.data_dependent_initialize(source)
        opt_f = self._projection_optimizer()
        for group in opt_f.param_groups:  # follow the generator's schedule (see module docstring)
            group["lr"] = self.opt_g.param_groups[0]["lr"]

        n = source.shape[0]
        real = torch.cat([source, target]) if cfg.nce_idt else source  # one G pass for both
        flipped = cfg.flip_equivariance and bool(torch.rand(()) < 0.5)
        if flipped:
            real = real.flip(3)
        fake = self.generator(real)
        fake_target, identity = fake[:n], fake[n:]

        # D step: real targets → 1, generated → 0, halved.
        set_requires_grad([self.discriminator], True)
        self.opt_d.zero_grad(set_to_none=True)
        loss_d = 0.5 * (
            self.gan_loss(self.discriminator(fake_target.detach()), False)
            + self.gan_loss(self.discriminator(target), True)
        )
        self.backward(loss_d)
        self.step(self.opt_d)

        # G + head step.
        set_requires_grad([self.discriminator], False)
        self.opt_g.zero_grad(set_to_none=True)
        opt_f.zero_grad(set_to_none=True)
        losses: dict[str, torch.Tensor] = {
            "g_gan": self.gan_loss(self.discriminator(fake_target), True, for_discriminator=False) * cfg.lambda_gan
        }
        nce_x = self.nce(source, fake_target, flipped)
        if cfg.nce_idt:
            nce_y = self.nce(target, identity, flipped)
            losses["nce"] = 0.5 * (nce_x + nce_y)
        else:
            losses["nce"] = nce_x
        losses.update(self.extra_generator_losses(source, target, fake_target))
        # --lambda-temporal: on the input G saw (flipped with the batch), whose output is fake_target.
        temporal = self.temporal_term(self.generator, real[:n], fake_target)
        if temporal is not None:
            losses["g_temporal"] = temporal
        self.backward(total(losses.values()))
        self.step(self.opt_g)
        self.step(opt_f)

        out = {"d": loss_d.item(), **{k: v.item() for k, v in losses.items()}, "nce_x": nce_x.item()}
        if cfg.nce_idt:
            out["nce_y"] = nce_y.item()
        return out

    # ------------------------------------------------------------------ loop interface

    def generators(self) -> list[GeneratorSpec]:
        return [GeneratorSpec("model.pt", self.generator, self.arch, self.g_kwargs, self.direction_of("AtoB"))]

    def networks(self) -> dict[str, torch.nn.Module]:
        # The head is listed even before it is built: loading a state.pt into it builds it.
        return {"generator": self.generator, "discriminator": self.discriminator, "projection": self.projection}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        opts: dict[str, torch.optim.Optimizer] = {"generator": self.opt_g, "discriminator": self.opt_d}
        if self.projection.built:  # after the first batch, or after --resume loaded the head
            opts["projection"] = self._projection_optimizer()
        return opts

    @torch.no_grad()
    def sample_rows(self, batch: dict[str, Any]) -> list[torch.Tensor]:
        source = batch["source"].to(self.device)
        target = batch["target"].to(self.device)
        rows = [source, self.generator(source), target]
        if self.config.nce_idt:
            rows.append(self.generator(target))  # identity: should look like the target row
        return rows


@dataclass(frozen=True)
class FastCUTConfig(CUTConfig):
    epochs: int = 150
    epochs_decay: int = 50
    lambda_nce: float = 10.0
    nce_idt: bool = False
    flip_equivariance: bool = True


@register_method("fastcut")
class FastCUT(CUT[FastCUTConfig]):
    config_class = FastCUTConfig
    summary = "unpaired, faster CUT: PatchNCE x10 without identity term, flip equivariance (Park et al. 2020)"
