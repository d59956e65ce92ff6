"""Every size in i2i is HxW (height first); sizes people habitually write width first are caught.

Camera and display modes are named width first (1280x720, 640x480). Given where i2i expects HxW
(``--camera-size``, ``pattern:HxW``), such a mode is almost surely W×H: it is refused with the
value it most likely meant, never silently swapped. A portrait size (720x1280) or any size not in
the list is taken as written.
"""

from __future__ import annotations

LANDSCAPE_MODES = {
    (320, 240), (424, 240), (640, 360), (640, 480), (800, 600), (848, 480), (960, 540), (1024, 768),
    (1280, 720), (1280, 800), (1280, 960), (1280, 1024), (1600, 1200), (1920, 1080), (2560, 1440), (3840, 2160),
}  # fmt: skip


def written_width_first(size: tuple[int, int]) -> bool:
    """Whether an (H, W) as given is a well-known landscape mode written W×H."""
    return size in LANDSCAPE_MODES
