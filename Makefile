# The front door. `make demo` runs the main job, `make test` runs every test.
BUILD      ?= build
BUILD_ASAN ?= build-asan
JOBS       ?= $(shell nproc)
CMAKE_ARGS ?=

.PHONY: all deps build test test-asan bench demo clean

all: build

deps:
	@bash scripts/install-deps.sh

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_ARGS)

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-asan: deps
	cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O1 -g0" -DGLIMPSE_SANITIZE=address,undefined -DGLIMPSE_CUDA=OFF $(CMAKE_ARGS)
	cmake --build $(BUILD_ASAN) -j $(JOBS)
	cd $(BUILD_ASAN) && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j $(JOBS)

bench: build
	bash bench/run.sh $(BUILD)

# The demo trains on the CPU, so it builds only the three tools, without the CUDA backend (nvcc
# would add minutes on a 2-core machine), in its own build directory.
demo:
	@date +%s > .demo-start
	@bash scripts/install-deps.sh
	cmake -S . -B build-demo -DCMAKE_BUILD_TYPE=Release -DGLIMPSE_CUDA=OFF $(CMAKE_ARGS)
	cmake --build build-demo -j $(JOBS) --target train infer eval
	DEMO_START=$$(cat .demo-start) bash scripts/demo.sh build-demo; rc=$$?; rm -f .demo-start; exit $$rc

clean:
	rm -rf $(BUILD) $(BUILD_ASAN)
