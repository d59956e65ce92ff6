"""The distribution as pip builds it: every package folder in the wheel, extras that never put two ONNX
Runtimes or two CUDA majors in one environment, dependency floors past the known advisories, and
install hints that name this distribution (``i2i-toolkit``; PyPI's ``i2i`` is an unrelated project).

The wheel installed into fresh venvs, with every entry point run there, is tests/test_wheel.py.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.version import Version
from wheel_build import ROOT, build_wheel, distribution_name, package_dir

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The i2i wheel as pip would build it (its METADATA is what pip reads for extras)."""
    return build_wheel(tmp_path_factory.mktemp("wheel"))


# -- what the wheel holds ------------------------------------------------------------------------
def _package_folders() -> dict[str, Path]:
    """Every package in the repository (a folder with __init__.py under a mapped root) -> its folder."""
    found = {}
    for name, folder in package_dir().items():
        for init in sorted((ROOT / folder).rglob("__init__.py")):
            if "__pycache__" in init.parts:
                continue
            rel = init.parent.relative_to(ROOT / folder)
            found[".".join((name, *rel.parts))] = init.parent
    return found


def test_wheel_holds_every_package_folder_and_its_py_typed(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    packages = _package_folders()
    assert "i2i.analysis" in packages  # the subpackage a hand-written list once missed
    missing = [pkg for pkg in packages if f"{pkg.replace('.', '/')}/__init__.py" not in names]
    assert not missing, f"packages missing from {wheel.name}: {missing}"
    modules = [
        f"{pkg.replace('.', '/')}/{py.name}" for pkg, folder in packages.items() for py in sorted(folder.glob("*.py"))
    ]
    assert not [m for m in modules if m not in names]
    typed = [f"{pkg.replace('.', '/')}/py.typed" for pkg, folder in packages.items() if (folder / "py.typed").exists()]
    assert typed and not [t for t in typed if t not in names]


def test_wheel_is_the_renamed_distribution_with_every_command(wheel: Path) -> None:
    assert wheel.name.startswith("i2i_toolkit-")
    with zipfile.ZipFile(wheel) as archive:
        meta = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        entry_points = next(n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt"))
        assert "Name: i2i-toolkit\n" in archive.read(meta).decode()
        scripts = {ln.split("=")[0].strip() for ln in archive.read(entry_points).decode().splitlines() if "=" in ln}
    assert {"i2i", "i2i-train", "i2i-export", "i2i-run", "i2i-bench", "i2i-eval"} <= scripts


def test_editable_install_imports_from_another_directory(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-c", "import i2i.runtime, i2i.train, i2i.export; print(i2i.train.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().startswith(str(ROOT / "train"))


# -- extras ----------------------------------------------------------------------------------------
def _requirements(wheel: Path, extras: tuple[str, ...]) -> set[str]:
    """The distribution names pip installs for ``i2i-toolkit[extras]``, from the wheel's own metadata."""
    with zipfile.ZipFile(wheel) as archive:
        meta = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        lines = archive.read(meta).decode().splitlines()
    names = set()
    for line in lines:
        if not line.startswith("Requires-Dist:"):
            continue
        req = Requirement(line.split(":", 1)[1].strip())
        contexts = [{"extra": e} for e in extras] or [{"extra": ""}]
        if req.marker is None or any(req.marker.evaluate(c) for c in contexts):
            names.add(req.name)
    return names


def test_gpu_and_cpu_extras_never_install_both_onnxruntimes(wheel: Path) -> None:
    ort = {"onnxruntime", "onnxruntime-gpu"}
    assert _requirements(wheel, ("gpu",)) & ort == {"onnxruntime-gpu"}
    assert _requirements(wheel, ("gpu-cu12",)) & ort == {"onnxruntime-gpu"}
    assert _requirements(wheel, ("cpu",)) & ort == {"onnxruntime"}
    assert _requirements(wheel, ("gpu", "train", "export")) & ort == {"onnxruntime-gpu"}
    assert _requirements(wheel, ()) & ort == set()  # a base dependency on either would clash with the other
    assert "cuda-python" in _requirements(wheel, ("trt",))


def _extra(name: str) -> dict[str, Requirement]:
    return {(r := Requirement(line)).name: r for line in PYPROJECT["project"]["optional-dependencies"][name]}


# TensorRT and cuda-python per CUDA major (issue: `cuda-python>=12.6` admitted 12.6.0, which has no
# cuda.bindings, and nothing tied the two to one CUDA major, so a CUDA 12 driver got CUDA 13 wheels).
# onnxruntime-gpu's wheels are built for CUDA 12 up to 1.26.x and for CUDA 13 from 1.27.0 (their
# METADATA: nvidia-cuda-runtime-cu12~=12.0 in 1.26.0, nvidia-cuda-runtime-cu13~=13.0 in 1.27.0).
@pytest.mark.parametrize(("extra", "major"), [("trt", 13), ("trt-cu13", 13), ("trt-cu12", 12)])
def test_trt_extras_tie_tensorrt_and_cuda_python_to_one_cuda_major(extra: str, major: int) -> None:
    reqs = _extra(extra)
    assert set(reqs) == {f"tensorrt-cu{major}", "cuda-python"}
    trt = reqs[f"tensorrt-cu{major}"].specifier
    assert trt.contains("10.16.1.11") and trt.contains("11.4.0.106") and not trt.contains("12.0.0")
    assert not trt.contains("8.6.1")  # before the strongly typed builder the exporter uses
    cuda = reqs["cuda-python"].specifier
    assert cuda.contains(f"{major}.9.10") and not cuda.contains(f"{major + 1}.0.0")
    assert not cuda.contains(f"{major - 1}.9.10")
    assert not cuda.contains("12.6.0")  # no cuda.bindings before 12.6.1


def test_trt_default_is_the_cuda_13_pair_as_gpu_is() -> None:
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert extras["trt"] == extras["trt-cu13"]
    gpu, gpu12 = _extra("gpu")["onnxruntime-gpu"].specifier, _extra("gpu-cu12")["onnxruntime-gpu"].specifier
    assert gpu.contains("1.27.0") and not gpu.contains("1.26.0")
    assert gpu12.contains("1.26.0") and not gpu12.contains("1.27.0")
    groups = [{item["extra"] for item in group} for group in PYPROJECT["tool"]["uv"]["conflicts"]]
    for pair in ({"cpu", "gpu"}, {"cpu", "gpu-cu12"}, {"trt", "trt-cu12"}, {"gpu", "trt-cu12"}, {"gpu-cu12", "trt"}):
        assert any(pair <= group for group in groups), f"uv lets {pair} into one environment"


# -- dependency floors -----------------------------------------------------------------------------
# (distribution, first fixed release, last affected release, advisory): a crafted input file (a
# checkpoint, a .webp, an ONNX model) runs code or reads outside its folder in the affected releases.
ADVISORIES = [
    ("torch", "2.6.0", "2.5.1", "CVE-2025-32434: torch.load(weights_only=True) runs code from a checkpoint"),
    ("torch", "2.10.0", "2.9.1", "CVE-2026-24747: memory corruption in torch.load's unpickler"),
    ("opencv-python", "4.8.1.78", "4.8.0.76", "CVE-2023-4863: libwebp heap overflow decoding a .webp"),
    # microsoft/onnxruntime#26776 (2025-12-12): external-data paths outside the model folder refused;
    # not in 1.23.2's binaries, in 1.24.1's (the first 1.24 release on the index).
    ("onnxruntime", "1.24.1", "1.23.2", "onnxruntime#26776: external data read from outside the model folder"),
    ("onnxruntime-gpu", "1.24.1", "1.23.2", "onnxruntime#26776: external data read from outside the model folder"),
    ("Pillow", "10.2.0", "10.1.0", "CVE-2023-50447: ImageMath.eval runs code from its environment argument"),
    ("Pillow", "10.3.0", "10.2.0", "CVE-2024-28219: buffer overflow in _imagingcms"),
]


def _all_requirements() -> list[tuple[str, Requirement]]:
    project = PYPROJECT["project"]
    reqs = [("dependencies", Requirement(r)) for r in project["dependencies"]]
    for extra, lines in project["optional-dependencies"].items():
        reqs += [(f"[{extra}]", Requirement(r)) for r in lines]
    return reqs


def _floor(req: Requirement) -> Version | None:
    """The lowest version a requirement admits, from its >=, ==, ~= or > clauses (None: no floor)."""
    bounds = [Version(s.version) for s in req.specifier if s.operator in (">=", "==", "~=", ">")]
    return max(bounds) if bounds else None


@pytest.mark.parametrize(("dist", "fixed", "affected", "advisory"), ADVISORIES, ids=[a[3][:14] for a in ADVISORIES])
def test_dependency_floors_exclude_versions_with_known_advisories(
    dist: str, fixed: str, affected: str, advisory: str
) -> None:
    reqs = [(where, r) for where, r in _all_requirements() if r.name == dist]
    assert reqs, f"{dist} is no longer a dependency: drop its advisory"
    for where, req in reqs:
        floor = _floor(req)
        assert floor is not None and floor >= Version(fixed), f"{where} {req} admits {dist} < {fixed} ({advisory})"
        assert not req.specifier.contains(affected, prereleases=True), f"{where} {req} admits {affected}"


PIN = re.compile(r"\b(torch|onnxruntime-gpu|onnxruntime|opencv-python)==([0-9][0-9a-z.+]*)")


def test_commands_in_readme_and_makefile_pin_no_affected_release() -> None:
    fixed: dict[str, Version] = {}
    for dist, first_fixed, _, _ in ADVISORIES:
        fixed[dist] = max(fixed.get(dist, Version("0")), Version(first_fixed))
    pins = [(name, m) for name in ("README.md", "Makefile") for m in PIN.finditer((ROOT / name).read_text())]
    assert any(m.group(1) == "torch" for _, m in pins)  # the Makefile's TORCH pin at least
    old = [f"{name}: {m.group(0)}" for name, m in pins if Version(m.group(2)) < fixed[m.group(1)]]
    assert not old, f"pins with a known advisory: {old}"


# -- install hints ---------------------------------------------------------------------------------
def test_install_hint_names_this_interpreter_and_distribution(monkeypatch: pytest.MonkeyPatch) -> None:
    from i2i import errors

    assert errors.DISTRIBUTION == distribution_name() == "i2i-toolkit"
    python = shlex.quote(sys.executable)
    # Here i2i runs from its checkout (the editable install): the hint installs the checkout's extra.
    assert errors.install_hint("cpu") == f"{python} -m pip install -e {shlex.quote(f'{ROOT}[cpu]')}"
    # An ordinary install: no editable record, no checkout around the package.
    monkeypatch.setattr(errors.metadata, "distributions", lambda **_: [])
    monkeypatch.setattr(errors, "__file__", "/nonexistent/site-packages/i2i/errors.py")
    assert errors.install_hint("gpu") == f"{python} -m pip install 'i2i-toolkit[gpu]'"
    message = errors.MissingDependencyError("TensorRT", "trt", "no module named tensorrt").message
    assert message.endswith(f"install it with: {python} -m pip install 'i2i-toolkit[trt]'")
    missing = errors.MissingDependencyError(["torch", "onnx"], "export").message
    assert missing.startswith("torch and onnx are not available;")


def test_install_hint_reads_the_editable_record(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from i2i import errors

    class Dist:
        def __init__(self, text: str | None) -> None:
            self.text = text

        def read_text(self, name: str) -> str | None:
            return self.text if name == "direct_url.json" else None

    checkout = tmp_path / "my checkout"
    records = [None, '{"url": "https://example.org/i2i.whl", "archive_info": {}}']
    editable = f'{{"dir_info": {{"editable": true}}, "url": "{checkout.as_uri()}"}}'
    monkeypatch.setattr(errors, "__file__", "/nonexistent/site-packages/i2i/errors.py")
    monkeypatch.setattr(errors.metadata, "distributions", lambda **_: [Dist(t) for t in records])
    assert "'i2i-toolkit[cpu]'" in errors.install_hint("cpu")  # installed from an archive: not editable
    monkeypatch.setattr(errors.metadata, "distributions", lambda **_: [Dist(t) for t in (*records, editable)])
    assert errors.install_hint("cpu").endswith(f" -m pip install -e '{checkout}[cpu]'")


# Where a message, a comment or a document may tell someone to `pip install` something.
SCANNED = ("i2i", "train", "export", "runtime", "benchmarks", ".ci")
SCANNED_FILES = ("README.md", "Makefile", "pyproject.toml", "setup.py")
# Third-party packages a hint may name besides i2i's own dependencies (read from pyproject.toml).
THIRD_PARTY = {"tensorrt-stubs", "pip", "uv", "build"}
# Options whose value is not what gets installed (-e's value is: a path, or a name that is wrong).
VALUE_OPTIONS = {"-r", "-c", "-i", "-t", "-f", "--index-url", "--extra-index-url", "--target", "--find-links"}


def _install_targets(line: str) -> list[str]:
    """The first thing each ``pip install`` on ``line`` installs (options and their values skipped)."""
    targets = []
    for part in re.split(r"\bpip install\b", line)[1:]:
        tokens = iter(part.split())
        for token in tokens:
            if token in VALUE_OPTIONS:
                next(tokens, None)
            elif not token.startswith("-"):
                targets.append(token)
                break
            elif token != token.rstrip("`'\")],;:"):  # ``pip install -e``) ...: the command ended there
                break
    return targets


def _scanned_files() -> list[Path]:
    files = [ROOT / name for name in SCANNED_FILES]
    for folder in SCANNED:
        files += [p for p in sorted((ROOT / folder).rglob("*")) if p.is_file() and p.suffix in (".py", ".md", "")]
    return [f for f in files if f.exists() and "__pycache__" not in f.parts and ".work" not in f.parts]


def _named_distribution(token: str) -> str | None:
    """The distribution a `pip install` argument names; None for a path, a variable or a placeholder."""
    token = token.strip("'\"`),;")
    if not token or token[0] in "./$({~-" or "/" in token.split("[")[0]:
        return None
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", token)
    return match.group(0).lower().replace("_", "-") if match else None


def test_no_hint_installs_a_distribution_that_is_not_this_project_or_a_dependency() -> None:
    own = distribution_name()
    allowed = {own, *THIRD_PARTY, *(r.name.lower() for _, r in _all_requirements())}
    wrong = []
    for path in _scanned_files():
        for lineno, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            names = [_named_distribution(t) for t in _install_targets(line)]
            if any(name is not None and name not in allowed for name in names):
                wrong.append(f"{path.relative_to(ROOT)}:{lineno}: {line.strip()[:120]}")
    assert not wrong, "hints naming another distribution (use i2i.errors.install_hint):\n" + "\n".join(wrong)


def test_the_hint_scan_catches_the_old_name() -> None:
    """The scan above on lines i2i printed before the rename, and on lines that are fine."""
    old = [
        "pip install 'i2i[gpu]'",
        "python -m pip install 'i2i[trt]' installs one",
        "reinstall it with: pip install i2i)",
        "-m pip uninstall -y onnxruntime && python -m pip install --upgrade 'i2i[cpu]'",
    ]
    fine = {
        "pip install '.[cpu]'": [None],
        "pip install -e '.[dev]'": [None],
        "(`pip install rich` for": ["rich"],
        "{python} -m pip install {spec}": [None],
        "$(BIN)/python -m pip install --quiet --no-deps 'tensorrt-stubs>=10.13'": ["tensorrt-stubs"],
        "pip install -i https://example.org/simple 'i2i-toolkit[cpu]'": ["i2i-toolkit"],
        "an editable install (``pip install -e``), read from": [],
        "what pip installs this project as": [],
    }
    for line in old:
        assert [_named_distribution(t) for t in _install_targets(line)] == ["i2i"], line
    for line, expected in fine.items():
        assert [_named_distribution(t) for t in _install_targets(line)] == expected, line


# -- the gpu extra in a fresh venv -----------------------------------------------------------------
def _venv(tmp_path: Path) -> Path:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    return venv / "bin" / "python"


def _pip(python: Path, *args: str) -> None:
    run = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", *args], capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stderr[-2000:]


PROBE = (
    "import importlib.metadata as m, json\n"
    "from i2i.runtime.backends import backend_status\n"
    "from i2i.runtime.backends.onnxruntime import gpu_fix_command\n"
    "out = {'ort': backend_status('ort'), 'fix': gpu_fix_command()}\n"
    "try:\n"
    "    import onnxruntime\n"
    "    owner = [d.metadata['Name'] for d in m.distributions()\n"
    "             if any(str(f) == 'onnxruntime/__init__.py' for f in (d.files or []))]\n"
    "    out.update(providers=onnxruntime.get_available_providers(), owner=owner)\n"
    "except ImportError:\n"
    "    pass\n"
    "print(json.dumps(out))\n"
)


def _probe(python: Path, tmp_path: Path) -> Any:
    import json

    run = subprocess.run([str(python), "-c", PROBE], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # ~1 min: a venv and the 256 MB onnxruntime-gpu wheel from the package index
def test_fresh_venv_plain_then_gpu_extra(wheel: Path, tmp_path: Path) -> None:
    """In a fresh venv: plain i2i names the command that adds a runtime (this venv's python, the
    i2i-toolkit distribution); the gpu extra's onnxruntime-gpu is then the only distribution
    providing the onnxruntime module, with CUDA.

    The i2i wheel goes in with --no-deps and the gpu extra's ONNX Runtime requirement with its
    own small dependencies (not the CUDA/cuDNN wheels, ~1 GB, which only a GPU would use)."""
    python = _venv(tmp_path)
    _pip(python, "--no-deps", str(wheel))
    _pip(python, "numpy", "click", "tqdm")
    plain = _probe(python, tmp_path)
    ok, why = plain["ort"]
    assert not ok and f"{python} -m pip install 'i2i-toolkit[cpu]'" in why
    assert plain["fix"].endswith("pip install 'i2i-toolkit[gpu]'")
    gpu = sorted(_requirements(wheel, ("gpu",)) & {"onnxruntime-gpu"})
    _pip(python, "--no-deps", *gpu)
    _pip(python, "flatbuffers", "packaging", "protobuf", "coloredlogs", "sympy")
    installed = _probe(python, tmp_path)
    assert installed["owner"] == ["onnxruntime-gpu"]
    assert "CUDAExecutionProvider" in installed["providers"]
    assert installed["ort"][0] is True
