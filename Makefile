# The front door. `make demo` runs the main job, `make test` runs every test.
BUILD      ?= build
BUILD_ASAN ?= build-asan
JOBS       ?= $(shell nproc)
CMAKE_ARGS ?=

# `make fuzz` (tests/fuzz/README.md): libFuzzer targets, built with clang in their own folder.
BUILD_FUZZ   ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= all
FUZZ_MODE    ?= explore

.PHONY: all deps build test test-asan bench demo clean fuzz fuzz-build fuzz-seeds

all: build

deps:
	@bash scripts/install-deps.sh

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_ARGS)

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS); rc=$$?; \
	  if [ -f onnx_node_tests.txt ]; then echo "ONNX backend node tests (pass / fail / unsupported):"; grep '^total' onnx_node_tests.txt; fi; \
	  exit $$rc

test-asan: deps
	cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O1 -g0" -DGLIMPSE_SANITIZE=address,undefined -DGLIMPSE_CUDA=OFF $(CMAKE_ARGS)
	cmake --build $(BUILD_ASAN) -j $(JOBS)
	cd $(BUILD_ASAN) && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j $(JOBS)

bench: build
	bash scripts/install-bench-deps.sh
	bash bench/run.sh $(BUILD)

# The demo trains on the CPU, so it builds only the three tools, without the CUDA backend (nvcc
# would add minutes on a 2-core machine), in its own build directory.
demo:
	@date +%s > .demo-start
	@bash scripts/install-deps.sh
	cmake -S . -B build-demo -DCMAKE_BUILD_TYPE=Release -DGLIMPSE_CUDA=OFF $(CMAKE_ARGS)
	cmake --build build-demo -j $(JOBS) --target train infer eval
	DEMO_START=$$(cat .demo-start) bash scripts/demo.sh build-demo; rc=$$?; rm -f .demo-start; exit $$rc

# Coverage-guided fuzzing of the file readers. FUZZ_SECONDS per target; FUZZ_TARGETS "all" or
# names (jpeg png ...); FUZZ_MODE explore (HDF5 read in-process, GLIMPSE_HDF5_SANDBOX=0) or
# released (the library's defaults: the HDF5 sandbox on). Findings: $(BUILD_FUZZ)/findings/.
fuzz: fuzz-build
	bash tests/fuzz/run.sh $(BUILD_FUZZ) "$(FUZZ_TARGETS)" $(FUZZ_SECONDS) $(FUZZ_MODE)

fuzz-build: deps
	@bash scripts/install-fuzz-deps.sh
	CC=clang CXX=clang++ cmake -S . -B $(BUILD_FUZZ) -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O1" \
	  -DGLIMPSE_FUZZ=ON -DGLIMPSE_CUDA=OFF $(CMAKE_ARGS)
	cmake --build $(BUILD_FUZZ) -j $(JOBS) --target fuzz_targets

# Regenerates the committed seeds of tests/fuzz/seeds/ (PNGs, small checkpoints, feature caches)
# and the hand-made input of tests/fuzz/regressions/captioner/.
fuzz-seeds: fuzz-build
	cmake --build $(BUILD_FUZZ) -j $(JOBS) --target fuzz_make_seeds
	$(BUILD_FUZZ)/tests/fuzz/fuzz_make_seeds tests/fuzz/seeds tests/data tests/fuzz/regressions

clean:
	rm -rf $(BUILD) $(BUILD_ASAN)
