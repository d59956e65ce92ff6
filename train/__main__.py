"""``python -m i2i.train``: the i2i-train command (what torchrun launches for --nproc N)."""

from i2i.train.cli import main

main()
