"""Triton Inference Server model repository: the scale-out path.

``i2i-export model.pt --triton DIR`` writes::

    DIR/<name>/config.pbtxt          platform, max_batch_size (an engine's: its profile's max batch),
                                     I/O names from the graph, dims/dtypes from the card,
                                     dynamic batching, instance groups
    DIR/<name>/1/model.onnx          (or model.plan with --engine trt; the sidecar goes beside it)

Triton then serves the model over HTTP/gRPC with server-side batching across clients and several
model instances per GPU: ``tritonserver --model-repository DIR``. The config is written from the
card, then parsed back and checked against the model's own I/O: with ``tritonclient``'s protobuf
definitions (``model_config_pb2``) when installed, else with ``parse_pbtxt``, a strict parser for
the subset written here that rejects unknown fields. An ensemble with a refinement model is not
written yet (the refinement can be baked into the graph with ``--refine``).
"""

from __future__ import annotations

import errno
import importlib.util
import os
import re
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from i2i.errors import I2IError
from i2i.runtime.card import ModelCard

PLATFORMS = {".onnx": ("onnxruntime_onnx", "model.onnx"), ".engine": ("tensorrt_plan", "model.plan")}
DTYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16", "uint8": "TYPE_UINT8"}
KINDS = {"gpu": "KIND_GPU", "cpu": "KIND_CPU"}


DEFAULT_MAX_BATCH = 8  # for dynamic-batch ONNX models when --triton-max-batch is not given


@dataclass(frozen=True)
class TritonConfig:
    repository: str
    name: str | None = None  # default: the model file's stem
    version: int = 1
    # None: the model's own limit (an engine's profile max batch; 8 for a dynamic ONNX model).
    # Static-batch models (and engines whose profile has one batch size above 1) get 0: no batching.
    max_batch_size: int | None = None
    preferred_batch_sizes: tuple[int, ...] = ()
    max_queue_delay_us: int = 100
    instances: int = 1
    kind: str = "gpu"
    overwrite: bool = False  # replace an existing DIR/<name>/<version> (never done without it)


# A model name is one plain folder name inside the repository (Triton loads each model from the folder
# named like it): letters, digits, '_', '-' and '.', starting with a letter, digit or '_' (so never
# '.', '..', a hidden folder or an option-like '-x'), at most 128 characters.
MODEL_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


def model_name(model_file: Path, config: TritonConfig) -> str:
    """The name the model is served under (``config.name``, else the model file's stem), checked to be a
    plain folder name: no path, no '..', nothing that would write outside the repository or at its root."""
    name = model_file.stem if config.name is None else config.name
    if not MODEL_NAME.fullmatch(name):
        given = "--triton-name" if config.name is not None else f"the model file's stem ({model_file.name})"
        raise I2IError(
            f"Triton model name {name!r} (from {given}) is not a plain folder name: use letters, digits, '_', '-' "
            "and '.', starting with a letter, digit or '_' (no '/', '..' or absolute path); "
            "give another one with --triton-name"
        )
    return name


@dataclass(frozen=True)
class ModelFacts:
    """What the config needs beyond the card: the graph's tensor names and, for an engine, the batch
    range of its optimisation profile (Triton's TensorRT backend refuses a max_batch_size above it)."""

    input: str
    output: str
    min_batch: int | None = None
    max_batch: int | None = None


def model_facts(model_file: Path) -> ModelFacts:
    """Tensor names from the ONNX graph, or names and profile batch range from an engine's sidecar."""
    if model_file.suffix == ".onnx":
        from i2i.export.tensorrt import graph_io

        return ModelFacts(*graph_io(model_file))
    from i2i.runtime.backends.tensorrt import check_engine_file, read_sidecar

    sidecar = read_sidecar(model_file)
    check_engine_file(model_file, sidecar)  # the plan copied into the repository is the one described
    profile = sidecar["profiles"][0]
    names = sidecar.get("tensors") or sidecar["card"].get("io", {})  # older sidecars: the i2i-card/1 io names
    if not {"input", "output"} <= set(names):
        raise I2IError(f"{model_file.name}: its sidecar names no tensors; rebuild it with `{sidecar['rebuild']}`")
    max_batch = int(profile.get("max_batch", profile["max"][0]))
    return ModelFacts(str(names["input"]), str(names["output"]), int(profile["min"][0]), max_batch)


def _io_dims(card: ModelCard) -> list[int]:
    """Per-request dims without the batch axis: -1 for dynamic H/W."""
    h, w = card.static_size or (-1, -1)
    channels = card.io.channels
    return [h, w, channels] if card.io.kind == "frame" else [channels, h, w]


def batching(card: ModelCard, facts: ModelFacts, config: TritonConfig) -> tuple[int, int | None]:
    """(max_batch_size, fixed batch or None): Triton batches requests up to max_batch_size; a fixed
    batch (max_batch_size 0) puts the batch axis into the dims instead."""
    asked = config.max_batch_size
    if card.static_batch is not None:
        if asked is not None:
            raise I2IError(
                f"--triton-max-batch: the model has a static batch of {card.static_batch}; Triton cannot batch it"
            )
        return 0, card.static_batch
    if facts.max_batch is None:  # a dynamic-batch ONNX model
        return (asked if asked is not None else DEFAULT_MAX_BATCH), None
    low, high = facts.min_batch or 1, facts.max_batch
    if low > 1:
        if low != high or asked is not None:
            raise I2IError(
                f"the engine's profile takes batches {low}..{high}; Triton batches from 1: rebuild the engine with "
                f"--min 1xHxW (or one batch size, which Triton serves unbatched)"
            )
        return 0, high
    if asked is not None and asked > high:
        raise I2IError(
            f"--triton-max-batch {asked} exceeds the engine profile's max batch {high}: ask for at most {high}, "
            f"or rebuild the engine with --max {asked}xHxW"
        )
    return (asked if asked is not None else high), None


def config_dict(card: ModelCard, model_file: Path, config: TritonConfig, facts: ModelFacts) -> dict[str, Any]:
    platform, _ = PLATFORMS[model_file.suffix]
    dims = _io_dims(card)
    max_batch, fixed = batching(card, facts, config)
    dtype = DTYPES[card.io.dtype if card.io.kind == "tensor" else "uint8"]
    out: dict[str, Any] = {"name": model_name(model_file, config), "platform": platform, "max_batch_size": max_batch}
    if fixed is not None:  # no Triton batching: the batch axis is part of the dims
        dims = [int(fixed), *dims]
    out["input"] = [{"name": facts.input, "data_type": dtype, "dims": dims}]
    out["output"] = [{"name": facts.output, "data_type": dtype, "dims": dims}]
    if fixed is None:
        batching_: dict[str, Any] = {"max_queue_delay_microseconds": config.max_queue_delay_us}
        if config.preferred_batch_sizes:
            batching_["preferred_batch_size"] = list(config.preferred_batch_sizes)
        out["dynamic_batching"] = batching_
    out["instance_group"] = [{"count": config.instances, "kind": KINDS[config.kind]}]
    return out


# -- writing pbtxt ----------------------------------------------------------------------------------
_ENUMS = {"data_type", "kind"}


def to_pbtxt(message: dict[str, Any], indent: int = 0) -> str:
    pad = "  " * indent
    lines = []
    for key, value in message.items():
        if isinstance(value, dict):
            lines += [f"{pad}{key} {{", to_pbtxt(value, indent + 1), f"{pad}}}"]
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            lines.append(f"{pad}{key} [")
            for k, item in enumerate(value):
                lines += [f"{pad}  {{", to_pbtxt(item, indent + 2), f"{pad}  }}" + ("," if k < len(value) - 1 else "")]
            lines.append(f"{pad}]")
        elif isinstance(value, list):
            lines.append(f"{pad}{key}: [ {', '.join(_scalar(key, v) for v in value)} ]")
        else:
            lines.append(f"{pad}{key}: {_scalar(key, value)}")
    return "\n".join(lines)


def _scalar(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if key in _ENUMS:
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


# -- strict parsing ---------------------------------------------------------------------------------
# field -> (type, repeated); type is "str", "int", "bool", "enum:<NAMES>" or a nested schema dict.
_TENSOR = {"name": ("str", False), "data_type": ("enum:" + " ".join(DTYPES.values()), False), "dims": ("int", True)}
SCHEMA: dict[str, tuple[Any, bool]] = {
    "name": ("str", False),
    "platform": ("str", False),
    "backend": ("str", False),
    "max_batch_size": ("int", False),
    "input": (_TENSOR, True),
    "output": (_TENSOR, True),
    "dynamic_batching": (
        {
            "preferred_batch_size": ("int", True),
            "max_queue_delay_microseconds": ("int", False),
            "preserve_ordering": ("bool", False),
        },
        False,
    ),
    "instance_group": (
        {"name": ("str", False), "count": ("int", False), "kind": ("enum:" + " ".join(KINDS.values()), False)},
        True,
    ),
    "default_model_filename": ("str", False),
}
_TOKEN = re.compile(r'\s*(?:(#[^\n]*)|("(?:[^"\\]|\\.)*")|([{}\[\]:,])|([-+]?\d+)|([A-Za-z_][A-Za-z0-9_]*))')


def _tokens(text: str) -> list[str]:
    tokens, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise I2IError(f"config.pbtxt: cannot parse near {text[pos : pos + 30]!r}")
        pos = match.end()
        if not match.group(1):
            tokens.append(next(g for g in match.groups()[1:] if g is not None))
    return tokens


def parse_pbtxt(text: str) -> dict[str, Any]:
    """Parse the subset of Triton's ModelConfig text format that i2i writes; unknown fields,
    wrong types and duplicate singular fields are errors (the file is rejected, not guessed)."""
    tokens = _tokens(text)
    try:
        message, _ = _message(tokens, 0, SCHEMA, top=True)
    except IndexError:
        raise I2IError("config.pbtxt: unexpected end of file (unclosed '{' or '[')") from None
    return message


def _message(tokens: list[str], pos: int, schema: dict[str, Any], top: bool = False) -> tuple[dict[str, Any], int]:
    out: dict[str, Any] = {}
    while pos < len(tokens) and (top or tokens[pos] != "}"):
        key = tokens[pos]
        if key not in schema:
            raise I2IError(f"config.pbtxt: unknown field {key!r} (known: {', '.join(schema)})")
        kind, repeated = schema[key]
        pos += 1
        if pos < len(tokens) and tokens[pos] == ":":
            pos += 1
        if pos < len(tokens) and tokens[pos] == "[":
            if not repeated:
                raise I2IError(f"config.pbtxt: field {key!r} is not repeated")
            pos += 1
            values = []
            while tokens[pos] != "]":
                value, pos = _value(tokens, pos, kind, key)
                values.append(value)
                if tokens[pos] == ",":
                    pos += 1
            pos += 1
            out.setdefault(key, []).extend(values)
        else:
            value, pos = _value(tokens, pos, kind, key)
            if repeated:
                out.setdefault(key, []).append(value)
            elif key in out:
                raise I2IError(f"config.pbtxt: field {key!r} given twice")
            else:
                out[key] = value
    if not top:
        if pos >= len(tokens):
            raise I2IError("config.pbtxt: missing '}'")
        pos += 1
    return out, pos


def _value(tokens: list[str], pos: int, kind: Any, key: str) -> tuple[Any, int]:
    token = tokens[pos]
    if isinstance(kind, dict):
        if token != "{":
            raise I2IError(f"config.pbtxt: field {key!r} needs a {{ message }}")
        return _message(tokens, pos + 1, kind)
    if kind == "str":
        if not token.startswith('"'):
            raise I2IError(f"config.pbtxt: field {key!r} needs a quoted string, got {token}")
        return re.sub(r"\\(.)", r"\1", token[1:-1]), pos + 1
    if kind == "int":
        if not re.fullmatch(r"[-+]?\d+", token):
            raise I2IError(f"config.pbtxt: field {key!r} needs an integer, got {token}")
        return int(token), pos + 1
    if kind == "bool":
        if token not in ("true", "false"):
            raise I2IError(f"config.pbtxt: field {key!r} needs true/false, got {token}")
        return token == "true", pos + 1
    allowed = kind.split(":", 1)[1].split()
    if token not in allowed:
        raise I2IError(f"config.pbtxt: field {key!r} must be one of {', '.join(allowed)}, got {token}")
    return token, pos + 1


_PB2: Any = None


def tritonclient_parse(text: str) -> dict[str, Any] | None:
    """Parse with Triton's own protobuf schema (``tritonclient``), or None when not installed.

    ``model_config_pb2`` is loaded from its file: importing ``tritonclient.grpc`` needs grpcio,
    which this check does not.
    """
    global _PB2
    spec = importlib.util.find_spec("tritonclient")
    if spec is None or not spec.submodule_search_locations:
        return None
    if _PB2 is None:
        path = Path(next(iter(spec.submodule_search_locations))) / "grpc" / "model_config_pb2.py"
        if not path.is_file():
            return None
        module_spec = importlib.util.spec_from_file_location("i2i_triton_model_config_pb2", path)
        if module_spec is None or module_spec.loader is None:
            return None
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        _PB2 = module
    from google.protobuf import json_format, text_format

    try:
        message = text_format.Parse(text, _PB2.ModelConfig())
    except text_format.ParseError as exc:
        raise I2IError(f"config.pbtxt does not parse as a Triton ModelConfig: {exc}") from None
    parsed: dict[str, Any] = json_format.MessageToDict(message, preserving_proto_field_name=True)
    return parsed


def check_config(parsed: dict[str, Any], expected: dict[str, Any]) -> None:
    """The parsed config must name the model's tensors with the card's dtype and dims."""
    for role in ("input", "output"):
        tensors = parsed.get(role, [])
        if len(tensors) != 1:
            raise I2IError(f"config.pbtxt: expected one {role}, found {len(tensors)}")
        got, want = tensors[0], expected[role][0]
        dims = [int(d) for d in got.get("dims", [])]
        if got.get("name") != want["name"] or got.get("data_type") != want["data_type"]:
            raise I2IError(f"config.pbtxt: {role} is {got.get('name')}/{got.get('data_type')}, card says {want}")
        if dims != want["dims"]:
            raise I2IError(f"config.pbtxt: {role} dims {dims} do not match the card's {want['dims']}")


def _check_options(model_file: Path, config: TritonConfig) -> None:
    if model_file.suffix not in PLATFORMS:
        raise I2IError(f"Triton repositories take .onnx or .engine models, not {model_file.name}")
    if config.kind not in KINDS:
        raise I2IError(f"--triton-kind {config.kind!r}; valid: {', '.join(KINDS)}")
    if config.kind == "cpu" and model_file.suffix == ".engine":
        raise I2IError("a TensorRT plan runs on a GPU: --triton-kind cpu needs an ONNX model")
    if (config.max_batch_size is not None and config.max_batch_size < 1) or config.instances < 1 or config.version < 1:
        raise I2IError("--triton-max-batch, --triton-instances and the version must be >= 1")
    model_name(model_file, config)  # before anything is read or written


def write_repository(model_file: Path, card: ModelCard, config: TritonConfig) -> Path:
    """Write DIR/<name>/config.pbtxt and DIR/<name>/<version>/model.{onnx,plan}; return the config path."""
    _check_options(model_file, config)
    data = config_dict(card, model_file, config, model_facts(model_file))
    limit = data["max_batch_size"]
    if config.preferred_batch_sizes and limit == 0:
        raise I2IError("preferred batch sizes need a dynamic-batch model; this one has a fixed batch")
    if any(b < 1 or b > limit for b in config.preferred_batch_sizes):
        raise I2IError(f"preferred batch sizes must be within 1..{limit}")
    text = to_pbtxt(data) + "\n"
    parsed = tritonclient_parse(text)
    check_config(parsed if parsed is not None else parse_pbtxt(text), data)
    model_dir = Path(config.repository) / data["name"]
    version = str(config.version)
    if (model_dir / version).exists() and not config.overwrite:
        raise I2IError(
            f"{model_dir / version} already exists: refusing to replace a served model version; pass "
            "--triton-overwrite to replace it, or choose another --triton-name"
        )
    # Staged in a hidden folder beside the model folder, then renamed into place: an interrupted or
    # failed write (full disk, Ctrl-C, SIGTERM) leaves the repository as it was, never a model
    # folder without its config or a half-copied model that Triton would try to load.
    staging = model_dir.with_name(f".{model_dir.name}.{secrets.token_hex(4)}.tmp")
    try:
        (staging / version).mkdir(parents=True)  # not tempfile.mkdtemp: Triton may run as another user
        shutil.copyfile(model_file, staging / version / PLATFORMS[model_file.suffix][1])
        if model_file.suffix == ".engine":
            from i2i.runtime.backends.tensorrt import sidecar_path

            if sidecar_path(model_file).is_file():
                shutil.copyfile(sidecar_path(model_file), staging / version / "model.plan.json")
        (staging / "config.pbtxt").write_text(text)
        if model_dir.is_dir():  # other versions stay: replace this version (asked for), then the config
            _replace_folder(staging / version, model_dir / version, staging / "replaced", config.overwrite)
            os.replace(staging / "config.pbtxt", model_dir / "config.pbtxt")
        else:
            os.replace(staging, model_dir)
    except OSError as exc:
        raise I2IError(f"cannot write Triton repository {model_dir}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return model_dir / "config.pbtxt"


def _replace_folder(new: Path, target: Path, aside: Path, overwrite: bool) -> None:
    """Rename ``new`` onto ``target``; an old ``target`` (only with ``overwrite``) is moved to ``aside``
    first and put back if the rename fails or is interrupted (the caller deletes ``aside``)."""
    if not target.exists():
        # os.rename onto a folder that appeared meanwhile fails unless it is empty: nothing is lost.
        os.rename(new, target)
        return
    if not overwrite:
        raise FileExistsError(errno.EEXIST, f"{target} appeared while writing")
    os.replace(target, aside)
    try:
        os.replace(new, target)
    except BaseException:
        os.replace(aside, target)
        raise
