"""``python -m i2i.train``: the i2i-train command (what torchrun launches for --nproc N); without
torch it stops with one line naming the extra, as the console script does."""

from i2i._entry import train

train()
