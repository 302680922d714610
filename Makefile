# vifkit entry points. Both targets install missing Debian packages (as root),
# configure build/ with CMake + Ninja, and build.
#   make demo   - ping + iperf3 through netfront -> rings -> netback on emulated Xen
#   make test   - the whole test suite (ctest)
#   make asan   - the test suite under ASan + UBSan (build-asan/)
#   make bench  - vifkit-bench: modes x sizes x directions, busy-poll, table + plot
#                 ($(BUILD)/bench.png, $(BUILD)/bench.json); with DPDK_ANCHOR=script
#                 the DPDK vhost-user reference runs in the same sweep
#   make fuzz   - clang + libFuzzer build (objects in build-fuzz/, fuzz_* executables in
#                 $(BUILD)/bin/), each fuzz target for FUZZ_SECONDS over its corpus
#                 (ctest -L fuzz); see README "Fuzzing"
#   make soak   - vifkit-soak: 32 vifs x 2 queues, both directions, 10 minutes;
#                 loss, corruption and RSS (README "Soak"; not part of make test)
#   make xen-lab - real Xen 4.17 under QEMU TCG: vifkit vs Linux netfront/netback,
#                 scenarios 1-4 (4: vifkit-back vs the kernel netback side by side,
#                 ratio table); LAB_SCENARIOS="1 2 3" picks some (tests/xen/lab.sh;
#                 README "Real Xen"; run by .ci/run, not part of make test)
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
FUZZ_SECONDS ?= 20

BENCH_SECONDS ?= 3
BENCH_ARGS ?= --mode all --size 64,1500,65535 --direction both --poll busy
# DPDK's testpmd vhost-user <-> virtio-user anchor (apt-get install dpdk dpdk-dev);
# picked up from the shared location if present, or DPDK_ANCHOR=path/to/dpdk-vhost-anchor.sh
DPDK_ANCHOR ?= $(wildcard ../shared/bench/dpdk-vhost-anchor.sh)

.PHONY: all deps build demo test asan fuzz bench soak clean xen-lab

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

fuzz: deps
	CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DVIFKIT_FUZZ=ON -DVIFKIT_SANITIZE=ON \
	  -DVIFKIT_FUZZ_SECONDS=$(FUZZ_SECONDS) -DVIFKIT_FUZZ_BIN_DIR=$(abspath $(BUILD))/bin $(CMAKE_FLAGS)
	cmake --build build-fuzz -j $(JOBS) --target fuzz_targets
	ctest --test-dir build-fuzz --output-on-failure -L fuzz

bench: build
	$(BUILD)/bin/vifkit-bench $(BENCH_ARGS) --seconds $(BENCH_SECONDS) \
	  $(if $(DPDK_ANCHOR),--dpdk $(DPDK_ANCHOR)) --json --table --plot $(BUILD)/bench.png > $(BUILD)/bench.json

clean:
	rm -rf $(BUILD) build-asan build-fuzz

# Soak (not in CI): 32 vifs x 2 queues, both directions, 10 minutes; exits non-zero on
# any lost or corrupted frame. SOAK_ARGS="--vifs 4 --seconds 60" for a short run.
SOAK_ARGS ?=
soak: build
	$(BUILD)/bin/vifkit-soak $(SOAK_ARGS)

# Real Xen 4.17 + Linux dom0/domU under QEMU TCG (tests/xen/lab.sh): vifkit
# against Linux netfront/netback and against itself, and side by side with the
# kernel netback (scenario 4). One boot per scenario, about 6 min for all four on
# an idle 2-core machine; root, apt access on first use (cache: tests/xen/cache/).
# Empty LAB_SCENARIOS = all. Env: LAB_TIMEOUT, LAB_S4_SECONDS, LAB_CACHE (lab.sh).
LAB_SCENARIOS ?=
xen-lab: build
	tests/xen/lab.sh $(BUILD)/bin $(LAB_SCENARIOS)
