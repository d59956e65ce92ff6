"""Data-parallel training: 2 gloo processes on the CPU keep identical replicas; bf16 autocast runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from i2i.train.loop import EpochBatches, TrainConfig, train
from i2i.train.methods.cyclegan import CycleGANConfig

# Process launchers: a few seconds each, so in make test rather than the edit loop.
pytestmark = pytest.mark.slow

SCRIPT = """
import json, sys
import torch, torch.distributed as dist
dist.init_process_group("gloo")
from i2i.train.loop import TrainConfig, train
from i2i.train.methods.cyclegan import CycleGANConfig
data, out = sys.argv[1], sys.argv[2]
result = train("cyclegan", CycleGANConfig(ngf=8, ndf=8, n_blocks=1, pool_size=4),
               TrainConfig(data=data, out=out, load_size=40, crop_size=32, batch_size=1, max_steps=4,
                           workers=0, progress=False, log_every=1))
rank, world = dist.get_rank(), dist.get_world_size()
flat = torch.cat([p.detach().reshape(-1) for net in result.method.networks().values() for p in net.parameters()])
gathered = [torch.zeros_like(flat) for _ in range(world)]
dist.all_gather(gathered, flat)
first = [p.detach().reshape(-1)[:4] for p in result.method.gen_ab.parameters()][0]
if rank == 0:
    json.dump({"world": world, "max_diff": max(float((g - gathered[0]).abs().max()) for g in gathered),
               "numel": flat.numel()}, open(out + "/replicas.json", "w"))
dist.destroy_process_group()
"""


def test_two_gloo_processes_keep_identical_replicas(demo_data: Path, tmp_path: Path) -> None:
    script = tmp_path / "ddp.py"
    script.write_text(SCRIPT)
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--standalone",  # a free port on localhost, so parallel runs on one machine never collide
        str(script),
        str(demo_data),
        str(out),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    replicas = json.loads((out / "replicas.json").read_text())
    assert replicas["world"] == 2 and replicas["numel"] > 1000
    assert replicas["max_diff"] == 0.0
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4]  # rank 0 alone writes the log
    assert (out / "model.pt").is_file() and (out / "model_BtoA.pt").is_file()


def test_ranks_see_disjoint_shards_of_each_global_batch() -> None:
    ranks = [EpochBatches(12, 2, seed=0, rank=r, world_size=3) for r in range(3)]
    assert ranks[0].per_epoch == 2
    firsts = [next(iter(r)) for r in ranks]
    keys = [k for batch in firsts for k in batch]
    assert len(keys) == 6 and len(set(keys)) == 6


def test_bf16_autocast_on_cpu(demo_data: Path, tmp_path: Path) -> None:
    result = train(
        "cyclegan",
        CycleGANConfig(ngf=8, ndf=8, n_blocks=1),
        TrainConfig(
            data=str(demo_data),
            out=str(tmp_path),
            load_size=40,
            crop_size=32,
            max_steps=2,
            workers=0,
            progress=False,
            amp="bf16",
            log_every=1,
        ),
    )
    assert result.steps == 2
    last = json.loads((tmp_path / "log.jsonl").read_text().splitlines()[-1])
    assert all(v == v for v in last.values())  # finite, not NaN


def test_fp16_on_cpu_is_refused(demo_data: Path, tmp_path: Path) -> None:
    from i2i.errors import I2IError

    with pytest.raises(I2IError, match="--amp fp16 needs a CUDA device"):
        train(
            "cyclegan",
            CycleGANConfig(ngf=8, ndf=8, n_blocks=1),
            TrainConfig(data=str(demo_data), out=str(tmp_path), max_steps=1, workers=0, progress=False, amp="fp16"),
        )
