# i2i: `make demo` (train → export → run → bench on a tiny offline dataset) and `make test`.
# Everything runs inside .venv, created on first use.

PYTHON ?= python3
VENV   ?= .venv
# Pinned so pip takes the small CPU wheel (>= 2.10: earlier torch.load has code-execution and
# memory-corruption advisories, see tests/test_packaging.py); a GPU user overrides it, e.g.
#   make demo TORCH='torch==2.13.0 --index-url https://download.pytorch.org/whl/cu130'
# The wheel tests (tests/test_wheel.py) install the same torch into their fresh venv.
TORCH  ?= torch==2.13.0
# ONNX Runtime: `cpu` here; on an NVIDIA machine EXTRAS=gpu,train,export,dev (never both)
EXTRAS ?= cpu,train,export,dev
DEMO   ?= demo_out
DEMO_STEPS ?= 1000
PYTEST_ARGS ?=

BIN := $(VENV)/bin
STAMP := $(VENV)/.i2i-installed

.PHONY: help venv demo test test-fast lint bench bench-gpu gpu-check soak student clean-demo

help:
	@echo "make demo   - build demo data, train, export, run a video, print a benchmark (CPU, < 10 min)"
	@echo "make test   - run the test suite (what CI runs; JOBS=N workers, default one per core), the wheel in fresh venvs included"
	@echo "make test-fast - the edit-loop subset: no slow, end-to-end or signal tests (< 3 min)"
	@echo "make bench  - the CPU benchmark suites -> benchmarks/results/<machine>/ (distils the demo student first)"
	@echo "make bench-gpu - the GPU suite (benchmarks/gpu.toml) on a CUDA machine"
	@echo "make gpu-check - a short GPU check (< 8 min): torch peers + whatever engines are installed"
	@echo "make soak   - 10 000 frames through the pipeline: RSS growth and latency drift"
	@echo "make lint   - ruff + mypy"

$(STAMP): pyproject.toml setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e '.[$(EXTRAS)]'
	# Type stubs that let mypy check the TensorRT code here; --no-deps because they require tensorrt itself.
	$(BIN)/python -m pip install --quiet --no-deps 'tensorrt-stubs>=10.13'
	touch $@

venv: $(STAMP)

# ---- demo: each step is a file target, so a second `make demo` reuses what exists ----
# (the venv is an order-only prerequisite: reinstalling does not invalidate the artefacts)
$(DEMO)/data/manifest.json: | $(STAMP)
	$(BIN)/i2i-train data demo $(DEMO)/data

$(DEMO)/run/model.pt: $(DEMO)/data/manifest.json
	$(BIN)/i2i-train pix2pix --data $(DEMO)/data --out $(DEMO)/run --overwrite \
	    --num-downs 7 --ngf 16 --ndf 16 --load-size 143 --crop-size 128 --batch-size 4 \
	    --max-steps $(DEMO_STEPS) --sample-every 200 --save-every 400

$(DEMO)/run/model.onnx: $(DEMO)/run/model.pt
	$(BIN)/i2i-export $(DEMO)/run/model.pt

$(DEMO)/video_translated.mp4: $(DEMO)/run/model.onnx $(DEMO)/data/manifest.json
	$(BIN)/i2i-run $(DEMO)/run/model.onnx --source $(DEMO)/data/video.mp4 \
	    --sink $(DEMO)/video_translated.mp4 --stats $(DEMO)/run_stats.json

$(DEMO)/bench.json: $(DEMO)/run/model.onnx
	$(BIN)/i2i-bench $(DEMO)/run/model.onnx --size 240x320 --iters 20 \
	    --json $(DEMO)/bench.json --markdown $(DEMO)/bench.md

# Spectral refinement (no training): a profile fitted on the model's translations of the training
# inputs against their targets, the video refined (unrefined | refined, side by side), and LFD
# before/after on the held-out test images, which the profile has not seen.
$(DEMO)/refine/profile.npz: $(DEMO)/run/model.onnx
	rm -rf $(DEMO)/refine/train_translated
	$(BIN)/i2i-run $(DEMO)/run/model.onnx -s $(DEMO)/data/train/A -o $(DEMO)/refine/train_translated/ --no-progress
	$(BIN)/i2i-eval profile $(DEMO)/data/train/B $(DEMO)/refine/train_translated -o $@

$(DEMO)/refine/lfd.txt: $(DEMO)/refine/profile.npz
	rm -rf $(DEMO)/refine/test_translated
	$(BIN)/i2i-run $(DEMO)/run/model.onnx -s $(DEMO)/data/test/A -o $(DEMO)/refine/test_translated/ --no-progress
	$(BIN)/i2i-eval spectrum $(DEMO)/data/test/B $(DEMO)/refine/test_translated --refine $< \
	    --out $(DEMO)/refine/spectrum --json $(DEMO)/refine/lfd.json > $@.tmp
	mv $@.tmp $@

$(DEMO)/video_refined.mp4: $(DEMO)/run/model.onnx $(DEMO)/refine/profile.npz
	$(BIN)/i2i-run $(DEMO)/run/model.onnx --source $(DEMO)/data/video.mp4 --refine $(DEMO)/refine/profile.npz \
	    --view before-after --sink $@ --no-progress

# Temporal stability: the demo video stabilised (i2i-run --stabilize) and both warping errors
$(DEMO)/video_stabilized.mp4: $(DEMO)/run/model.onnx $(DEMO)/data/manifest.json
	$(BIN)/i2i-run $(DEMO)/run/model.onnx --source $(DEMO)/data/video.mp4 --stabilize 0.5 \
	    --sink $@ --no-progress

$(DEMO)/temporal.txt: $(DEMO)/video_translated.mp4 $(DEMO)/video_stabilized.mp4
	$(BIN)/i2i-eval temporal $(DEMO)/data/video.mp4 $(DEMO)/video_translated.mp4 \
	    --stabilized $(DEMO)/video_stabilized.mp4 --plot $(DEMO)/temporal.png --json $(DEMO)/temporal.json > $@.tmp
	mv $@.tmp $@

demo: $(DEMO)/video_translated.mp4 $(DEMO)/bench.json $(DEMO)/video_refined.mp4 $(DEMO)/refine/lfd.txt $(DEMO)/temporal.txt
	@echo
	@cat $(DEMO)/bench.md
	@echo
	@echo "spectral refinement on the held-out images (profile fitted on the training translations):"
	@cat $(DEMO)/refine/lfd.txt
	@echo
	@echo "temporal stability of the demo video (per-frame vs --stabilize 0.5):"
	@cat $(DEMO)/temporal.txt
	@echo
	@echo "artefacts:"
	@echo "  dataset        $(DEMO)/data  (paired train/A,B test/A,B; unpaired trainA,B testA,B)"
	@echo "  input video    $(DEMO)/data/video.mp4"
	@echo "  checkpoint     $(DEMO)/run/model.pt   (training state: $(DEMO)/run/state.pt)"
	@echo "  samples        $(DEMO)/run/samples/"
	@echo "  training log   $(DEMO)/run/log.jsonl"
	@echo "  onnx model     $(DEMO)/run/model.onnx  (parity: $(DEMO)/run/model.parity.json)"
	@echo "  output video   $(DEMO)/video_translated.mp4"
	@echo "  refined video  $(DEMO)/video_refined.mp4  (unrefined | refined; profile: $(DEMO)/refine/profile.npz)"
	@echo "  spectra        $(DEMO)/refine/spectrum/  (LFD: $(DEMO)/refine/lfd.json)"
	@echo "  stabilised     $(DEMO)/video_stabilized.mp4  (beside video_translated.mp4; E_warp plot: $(DEMO)/temporal.png)"
	@echo "  run stats      $(DEMO)/run_stats.json"
	@echo "  benchmark      $(DEMO)/bench.json, $(DEMO)/bench.md"

# The real-time student: the demo pix2pix distilled into the `fast` architecture (benchmarked by make bench).
# --load-size 256: the student learns at the scale it runs at (the demo frames' own size). It distils
# from the demo set plus real clips (STUDENT_DATA) and is evaluated on a real clip it never saw
# (STUDENT_EVAL; the demo's test/A when ../shared/media is absent): PSNR/SSIM to the teacher come from
# the run itself, with the teacher in the one test-time mode its cache was made in (card.teacher),
# and the last evaluation goes to student/heldout.json.
MEDIA ?= ../shared/media
STUDENT_DATA ?= $(DEMO)/data$(if $(wildcard $(MEDIA)/walk.mkv),$(comma)$(MEDIA)/walk.mkv$(comma)$(MEDIA)/bottle-detection.mp4)
STUDENT_EVAL ?= $(wildcard $(MEDIA)/book.mkv)
comma := ,
$(DEMO)/student/model.pt: $(DEMO)/run/model.pt
	$(BIN)/i2i-train distill --data $(STUDENT_DATA) --teacher $(DEMO)/run/model.pt --out $(DEMO)/student --overwrite \
	    --load-size 256 --crop-size 128 --batch-size 8 --max-steps 1500 --sample-every 500 --save-every 500 \
	    $(if $(STUDENT_EVAL),--eval-data $(STUDENT_EVAL))
	tail -n 1 $(DEMO)/student/eval.jsonl > $(DEMO)/student/heldout.json
	@echo "student vs teacher on held-out frames:"; cat $(DEMO)/student/heldout.json

student: $(DEMO)/student/model.pt

bench: $(DEMO)/student/model.pt
	$(BIN)/i2i-bench benchmarks/cpu.toml
	$(BIN)/i2i-bench benchmarks/refine.toml

# On a CUDA machine (torch with CUDA; onnxruntime-gpu and tensorrt where installed).
bench-gpu: $(DEMO)/student/model.pt
	$(BIN)/i2i-bench benchmarks/gpu.toml

# A short GPU check (< 8 min on an H200). First the TensorRT backend's own CUDA path
# (benchmarks/trt_cuda_check.py: pinned staging, stream, per-shape buffers, uint8 frame I/O, CUDA
# graphs, with execute_async_v3 stood in by a torch kernel; frames checked bit for bit), then
# torch eager/channels_last/CUDA graphs/compile, fp32/fp16,
# plus ONNX Runtime's CUDA provider where installed (TensorRT is only reported, installed or not: its
# engines are timed by bench-gpu) -> benchmarks/results/<gpu>/gpu-check.*. Runs from a bare working
# tree with any Python that has torch+CUDA: PY defaults to .venv's python, or python3 without a .venv.
PY ?= $(if $(wildcard $(BIN)/python),$(BIN)/python,python3)
gpu-check:
	$(PY) benchmarks/gpu_check.py

soak: $(STAMP)
	$(BIN)/i2i-bench benchmarks/soak.toml

clean-demo:
	rm -rf $(DEMO)

# The suite runs on JOBS pytest-xdist workers (one file per worker at a time). pytest exits 5 when it
# collects no test: that is a failure, not a pass.
JOBS ?= auto
PYTEST := $(BIN)/pytest
define run_pytest
	$(PYTEST) $(1) $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests ($(1)): failing" >&2; exit 1; fi; \
	if [ $$rc -ne 0 ]; then exit $$rc; fi
endef

# tests/test_wheel.py (slow) builds the wheel, installs it non-editable into two fresh venvs ([cpu]; and
# [cpu,train,export] with $(TORCH)) and runs every command there.
test: $(STAMP)
	@I2I_TEST_TORCH='$(TORCH)' $(call run_pytest,-n $(JOBS) --dist loadfile)

# The edit loop (< 3 min on 2 cores): no slow or end-to-end tests (signalled commands, launchers, mypy).
test-fast: $(STAMP)
	@$(call run_pytest,-n $(JOBS) --dist loadfile -m "not slow and not e2e")

lint: $(STAMP)
	$(BIN)/ruff check i2i train export runtime tests setup.py
	# mypy on the package as it installs (i2i/ with train/, export/, runtime/ inside, as symlinks):
	# from the repository it could not follow the editable install's mapping of those folders.
	rm -rf build/typecheck && mkdir -p build/typecheck/i2i
	for f in i2i/*; do ln -s "$(CURDIR)/$$f" build/typecheck/i2i/; done
	for d in train export runtime; do ln -s "$(CURDIR)/$$d" build/typecheck/i2i/$$d; done
	cd build/typecheck && $(CURDIR)/$(BIN)/mypy --config-file $(CURDIR)/pyproject.toml --warn-unused-ignores i2i
