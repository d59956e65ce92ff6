"""i2i.runtime: torch-free inference pipeline (sources → preprocess → backend → postprocess → sinks)."""
