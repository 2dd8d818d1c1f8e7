# cgw — software customer gateway for AWS Site-to-Site VPN.
# The two commands a newcomer needs (as root, on Debian 12):
#   make demo   the gateway against an emulated AWS side, step by step
#   make test   every test: unit, fuzz seeds, bounded fuzzing, end-to-end
SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin:$(shell go env GOPATH 2>/dev/null)/bin

GO        ?= go
BIN       := bin
LAB       ?= cgwlab
# The lab's gateway: cgw (cgw-control + cgw-dataplane), or standin
# (strongSwan + BIRD in the gateway namespace: the baseline).
GATEWAY   ?= cgw
FUZZTIME  ?= 15s
CMDS      := $(notdir $(wildcard cmd/*))
STATICCHECK_VERSION := v0.8.2
# What -version and cgw_build_info say (internal/buildinfo), from git.
VERSION   ?= $(shell git describe --tags --match 'v*' 2>/dev/null || git log -1 --format='v0.0.0-%cd-%h' --date=format:%Y%m%d%H%M%S 2>/dev/null || echo devel)
COMMIT    ?= $(shell git rev-parse HEAD 2>/dev/null)$(shell git diff --quiet HEAD -- 2>/dev/null || echo +dirty)
LDFLAGS   := -X github.com/cgw-project/cgw/internal/buildinfo.version=$(VERSION) -X github.com/cgw-project/cgw/internal/buildinfo.commit=$(COMMIT)

.PHONY: all build generate deps test test-unit fuzz demo lab-up lab-down bench lint clean install deb fresh-check

all: build

deps:
	@scripts/install-deps.sh test

build:
	@mkdir -p $(BIN)
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/ ./cmd/...

# Installs the gateway as a service: the daemons and cgwctl, the systemd
# units (paths rewritten to BINDIR and SYSCONFDIR), bash completion, the
# man pages (packaging/man, gzip -9n: reproducible), and
# SYSCONFDIR/cgw/cgw.yaml from the example unless one is there already.
# Then: cgwctl config import -o /etc/cgw/cgw.yaml <aws-file>;
#       systemctl enable --now cgw-dataplane cgw-control
PREFIX     ?= /usr/local
DESTDIR    ?=
BINDIR     ?= $(PREFIX)/bin
SYSCONFDIR ?= /etc
UNITDIR    ?= $(PREFIX)/lib/systemd/system
SHAREDIR   ?= $(PREFIX)/share
SERVICE_CMDS := cgw-dataplane cgw-control cgwctl
install: build
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SHAREDIR)/bash-completion/completions $(DESTDIR)$(SHAREDIR)/doc/cgw $(DESTDIR)$(SHAREDIR)/man/man8
	install -d -m 0700 $(DESTDIR)$(SYSCONFDIR)/cgw
	install -m 0755 $(addprefix $(BIN)/,$(SERVICE_CMDS)) $(DESTDIR)$(BINDIR)/
	for u in packaging/systemd/*.service; do \
		sed -e 's|/usr/bin/|$(BINDIR)/|g' -e 's|/etc/cgw/|$(SYSCONFDIR)/cgw/|g' $$u > $(DESTDIR)$(UNITDIR)/$$(basename $$u) && \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$$(basename $$u) || exit 1; \
	done
	$(BIN)/cgwctl completion bash > $(DESTDIR)$(SHAREDIR)/bash-completion/completions/cgwctl
	for m in packaging/man/*.8; do \
		gzip -9n -c $$m > $(DESTDIR)$(SHAREDIR)/man/man8/$$(basename $$m).gz && \
		chmod 0644 $(DESTDIR)$(SHAREDIR)/man/man8/$$(basename $$m).gz || exit 1; \
	done
	install -m 0644 README.md $(DESTDIR)$(SHAREDIR)/doc/cgw/
	install -m 0644 testdata/cgw-example.yaml $(DESTDIR)$(SHAREDIR)/doc/cgw/cgw-example.yaml
	test -e $(DESTDIR)$(SYSCONFDIR)/cgw/cgw.yaml || install -m 0600 testdata/cgw-example.yaml $(DESTDIR)$(SYSCONFDIR)/cgw/cgw.yaml

# The Debian package: make install into a staging tree with PREFIX=/usr,
# packed by tools/mkdeb (nFPM); /etc/cgw/cgw.yaml is a conffile.
DEBROOT = $(BIN)/deb-root
deb:
	rm -rf $(DEBROOT)
	$(MAKE) install DESTDIR=$(abspath $(DEBROOT)) PREFIX=/usr
	$(GO) run ./tools/mkdeb -root $(DEBROOT) -version $(VERSION) -o $(or $(OUT),$(BIN))

# Rebuilds the XDP objects and their Go bindings (bpf2go; needs clang).
generate:
	@scripts/install-deps.sh generate
	$(GO) generate ./bpf/...

# Everything, as CI runs it. End-to-end tests need root, namespaces,
# strongSwan and BIRD: a missing prerequisite fails the run.
test: deps
	@echo "==> go vet"
	$(GO) vet ./...
	@echo "==> unit and end-to-end tests"
	$(GO) test -count=1 -timeout 45m ./...
	@echo "==> race detector on the concurrent packages"
	$(GO) test -count=1 -race -timeout 15m ./dataplane/... ./crypto/... ./control/ike \
		./control/daemon ./control/bgp ./control/rib ./control/status ./control/metrics ./control/kernelguard \
		./cmd/cgw-dataplane
	@echo "==> bounded fuzzing ($(FUZZTIME) per target)"
	@FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

# Quick loop for developers: no root needed, end-to-end tests skipped (and say so).
test-unit:
	$(GO) test -short -count=1 ./...

fuzz:
	@FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

demo: deps build
	$(BIN)/cgw-lab demo --prefix $(LAB) --gateway $(GATEWAY)

lab-up: deps build
	$(BIN)/cgw-lab up --prefix $(LAB) --gateway $(GATEWAY)

lab-down: build
	$(BIN)/cgw-lab down --prefix $(LAB)

# Benchmarks print figures and ratios measured side by side in one run, and
# each run appends a record to perf/results/bench.txt (format in its README).
REC := perf/results/record.sh --
# Prometheus's data of the benchmark's one-worker runs (kept for Grafana).
BENCH_PROM ?= /var/tmp/cgw-bench-prometheus
BENCH_SUITES ?= aes256gcm16 aes128-sha256 aes256-sha512
bench: deps build
	@echo "==> ESP, transforms and the worker pipeline against the raw cipher (I/O removed)"
	$(REC) $(GO) test -run '^$$' -bench 'ESP|Overhead' -benchtime 100000x -count 5 ./dataplane/esp ./crypto/transform
	$(REC) $(GO) test -run '^$$' -bench . -benchtime 3000x -count 5 ./dataplane/worker
	@echo "==> generator -> cgw-dataplane -> sink: efficiency against the floor 1/(t_fwd + t_cipher), RFC 2544 NDR/PDR with latency (one worker), scaling to two workers, against strongSwan; Prometheus scrapes the one-worker runs and the bench dashboard is checked against them; CSV, JSON and plots in perf/results/latest"
	rm -rf $(BENCH_PROM)
	$(REC) $(BIN)/cgw-pktgen bench -dataplane $(BIN)/cgw-dataplane -mixes "64 1400 imix" -runs 7 -quiet -prometheus $(BENCH_PROM) -out perf/results/latest
	@echo "==> efficiency of the other ESP suites (AES-256-GCM, AES-CBC with HMAC-SHA-256 and -SHA-512/256)"
	for s in $(BENCH_SUITES); do $(REC) $(BIN)/cgw-pktgen bench -dataplane $(BIN)/cgw-dataplane -suite $$s -mixes "64 1400 imix" -runs 7 -ndr=false -scaling=false -strongswan=false -quiet -out perf/results/latest/$$s || exit 1; done
	@echo "==> through the emulated AWS lab (strongSwan on the AWS side bounds this)"
	$(REC) $(BIN)/cgw-lab measure --prefix $(LAB)-bench --gateway standin,cgw --runs 3 -t 5s

# make demo (or FRESH=test: make test) in a fresh Debian 12 made with
# debootstrap, on a clean clone of HEAD: finds a prerequisite that
# install-deps.sh does not install, which a used machine hides.
FRESH ?= demo
fresh-check:
	scripts/fresh-check.sh $(FRESH)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

clean:
	rm -rf $(BIN)
