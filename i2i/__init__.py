"""i2i: image-to-image translation from training to real-time deployment.

The distribution has three layers, each in its own top-level folder:
``i2i.train`` (torch), ``i2i.export`` (torch + onnx) and ``i2i.runtime``
(numpy, OpenCV, ONNX Runtime; never torch).
"""

__version__ = "0.1.0"
