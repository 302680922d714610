# vifkit entry points. Both targets install missing Debian packages (as root),
# configure build/ with CMake + Ninja, and build.
#   make demo   - ping + iperf3 through netfront -> rings -> netback on emulated Xen
#   make test   - the whole test suite (ctest)
#   make asan   - the test suite under ASan + UBSan (build-asan/)
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps build demo test asan clean

all: build

deps:
	@scripts/install-deps.sh

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja $(CMAKE_FLAGS)

build: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

demo: build
	scripts/demo.sh $(BUILD)/bin

test: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS) --timeout 300

asan: deps
	cmake -S . -B build-asan -G Ninja -DVIFKIT_SANITIZE=ON $(CMAKE_FLAGS)
	cmake --build build-asan -j $(JOBS)
	ctest --test-dir build-asan --output-on-failure -j $(JOBS) --timeout 600

clean:
	rm -rf $(BUILD) build-asan
