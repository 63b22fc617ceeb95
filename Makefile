# conversation-webhook-operator

# VERSION is the one place the version is written: make sync-version copies it
# into the chart (version, appVersion), config/manager's image tag and
# dist/install.yaml; the release workflow checks that the tag is v$(VERSION).
VERSION ?= $(shell cat VERSION)
IMAGE_REPO ?= ghcr.io/twilio-operator/conversation-webhook-operator
IMG ?= $(IMAGE_REPO):$(VERSION)
PLATFORMS ?= linux/amd64,linux/arm64
ENVTEST_K8S_VERSION ?= 1.37.2

LOCALBIN ?= $(shell pwd)/bin
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen
SETUP_ENVTEST ?= $(LOCALBIN)/setup-envtest
GOLANGCI_LINT ?= $(LOCALBIN)/golangci-lint
KUSTOMIZE ?= $(LOCALBIN)/kustomize

CONTROLLER_TOOLS_VERSION ?= v0.23.0
SETUP_ENVTEST_VERSION ?= v0.25.1
GOLANGCI_LINT_VERSION ?= v2.15.0
KUSTOMIZE_VERSION ?= v5.8.2

SHELL = /usr/bin/env bash -o pipefail
.SHELLFLAGS = -ec

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: controller-gen ## Generate the CRD and the ClusterRole from the markers.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd paths="./..." output:crd:artifacts:config=config/crd/bases
	hack/sync-chart.sh

.PHONY: generate
generate: controller-gen ## Generate DeepCopy methods.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: fmt
fmt: ## Run go fmt.
	go fmt ./...

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

.PHONY: verify
verify: controller-gen ## Regenerate and fail if any generated file changed (hand edits included), or Go is unformatted.
	hack/verify-generated.sh

.PHONY: lint
lint: golangci-lint ## Run golangci-lint.
	$(GOLANGCI_LINT) run

.PHONY: envtest-assets
envtest-assets: setup-envtest ## Provision kube-apiserver and etcd for envtest (download, else build once per machine).
	@SETUP_ENVTEST=$(SETUP_ENVTEST) ENVTEST_K8S_VERSION=$(ENVTEST_K8S_VERSION) hack/envtest-assets.sh

.PHONY: test
test: manifests generate fmt vet setup-envtest ## Run all tests (unit, client, fake, envtest).
	KUBEBUILDER_ASSETS="$$(SETUP_ENVTEST=$(SETUP_ENVTEST) ENVTEST_K8S_VERSION=$(ENVTEST_K8S_VERSION) hack/envtest-assets.sh)" \
		go test ./... -timeout 30m -coverprofile cover.out

.PHONY: test-race
test-race: setup-envtest ## Run the unit and envtest packages (internal/, cmd/) with the race detector, never from the test cache.
	KUBEBUILDER_ASSETS="$$(SETUP_ENVTEST=$(SETUP_ENVTEST) ENVTEST_K8S_VERSION=$(ENVTEST_K8S_VERSION) hack/envtest-assets.sh)" \
		go test -race -count=1 -timeout 30m ./internal/... ./cmd/...

.PHONY: test-live
test-live: ## Run the live contract suite against real Twilio (TWILIO_* credentials); skips without them.
	go test -tags live ./test/live/ -count=1 -v

##@ Local

.PHONY: demo
demo: build setup-envtest ## Run everything locally: control plane, Twilio fake, manager, samples. DEMO_ONESHOT=1 exits once Ready.
	KUBEBUILDER_ASSETS="$$(SETUP_ENVTEST=$(SETUP_ENVTEST) ENVTEST_K8S_VERSION=$(ENVTEST_K8S_VERSION) hack/envtest-assets.sh)" \
		go run ./test/localenv/demo

##@ Build

.PHONY: build
build: manifests generate fmt vet ## Build the manager, cwh-import and the standalone Twilio fake.
	CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o bin/manager ./cmd/manager
	CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o bin/cwh-import ./cmd/cwh-import
	go build -o bin/twilio-fake ./cmd/twilio-fake

.PHONY: run
run: manifests generate ## Run the manager against the current kubeconfig and the real Twilio API.
	go run ./cmd/manager $(ARGS)

.PHONY: docker-build
docker-build: ## Build the container image (needs a Docker engine).
	docker build -t $(IMG) .

.PHONY: image
image: ## Build the image without Docker, tagged IMG: dist/image.tar (OCI layout, PLATFORMS) and dist/image-docker.tar (host platform, for kind/k3d).
	go run ./hack/image -img $(IMG) -version $(VERSION) -platforms $(PLATFORMS) -oci dist/image.tar -docker dist/image-docker.tar

.PHONY: image-push
image-push: ## Build the image for PLATFORMS and push it to IMG (credentials from ~/.docker/config.json, e.g. docker login).
	go run ./hack/image -img $(IMG) -version $(VERSION) -platforms $(PLATFORMS) -oci "" -docker "" -push

##@ Deployment

.PHONY: build-installer
build-installer: manifests kustomize ## Write dist/install.yaml: namespace, CRD, RBAC and Deployment in one file.
	mkdir -p dist
	cd config/manager && $(KUSTOMIZE) edit set image controller=$(IMG)
	$(KUSTOMIZE) build config/default > dist/install.yaml
	cd config/manager && $(KUSTOMIZE) edit set image controller=$(IMAGE_REPO):$(VERSION)

.PHONY: sync-version
sync-version: kustomize ## Write VERSION into Chart.yaml (version, appVersion), config/manager's image tag and dist/install.yaml.
	sed -i -E 's/^version: .*/version: $(VERSION)/; s/^appVersion: .*/appVersion: "$(VERSION)"/' charts/conversation-webhook-operator/Chart.yaml
	$(MAKE) build-installer IMG=$(IMAGE_REPO):$(VERSION)
	cd config/manager && $(KUSTOMIZE) edit set image controller=$(IMAGE_REPO):$(VERSION)

.PHONY: helm
helm: manifests ## Lint the Helm chart (defaults and every option) and render it to dist/chart-rendered.yaml, with Helm's Go SDK.
	go run ./test/install/helmtool

.PHONY: install
install: manifests ## Apply the CRD to the current kubeconfig's cluster.
	kubectl apply --server-side -f config/crd/bases

ignore-not-found ?= false

.PHONY: uninstall
uninstall: manifests ## Delete the CRD from the current kubeconfig's cluster (and with it every object). ignore-not-found=true to ignore a missing one.
	kubectl delete --ignore-not-found=$(ignore-not-found) -f config/crd/bases

.PHONY: deploy
deploy: build-installer ## Apply dist/install.yaml to the current kubeconfig's cluster.
	kubectl apply --server-side -f dist/install.yaml

##@ Tools

$(LOCALBIN):
	mkdir -p $(LOCALBIN)

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN) ## Install controller-gen into ./bin.
$(CONTROLLER_GEN): | $(LOCALBIN)
	$(call go-install-tool,$(CONTROLLER_GEN),sigs.k8s.io/controller-tools/cmd/controller-gen,$(CONTROLLER_TOOLS_VERSION))

.PHONY: setup-envtest
setup-envtest: $(SETUP_ENVTEST) ## Install setup-envtest into ./bin.
$(SETUP_ENVTEST): | $(LOCALBIN)
	$(call go-install-tool,$(SETUP_ENVTEST),sigs.k8s.io/controller-runtime/tools/setup-envtest,$(SETUP_ENVTEST_VERSION))

.PHONY: golangci-lint
golangci-lint: $(GOLANGCI_LINT) ## Install golangci-lint into ./bin.
$(GOLANGCI_LINT): | $(LOCALBIN)
	$(call go-install-tool,$(GOLANGCI_LINT),github.com/golangci/golangci-lint/v2/cmd/golangci-lint,$(GOLANGCI_LINT_VERSION))

# go-install-tool installs a Go tool at a pinned version as bin/NAME-VERSION and links bin/NAME to it.
define go-install-tool
@[ -f "$(1)-$(3)" ] || { \
set -e; \
echo "Installing $(2)@$(3)"; \
rm -f $(1) || true; \
GOBIN=$(LOCALBIN) go install $(2)@$(3); \
mv $(1) $(1)-$(3); \
}; \
ln -sf $$(basename $(1)-$(3)) $(1)
endef

.PHONY: kustomize
kustomize: $(KUSTOMIZE) ## Install kustomize into ./bin.
$(KUSTOMIZE): | $(LOCALBIN)
	$(call go-install-tool,$(KUSTOMIZE),sigs.k8s.io/kustomize/kustomize/v5,$(KUSTOMIZE_VERSION))

##@ Scale and faults

# An execution count, not a duration: with a duration, Go 1.26's fuzz coordinator
# can report a bare "context deadline exceeded" failure, with no failing input,
# when -fuzztime expires (golang/go#75804, fixed in Go 1.27). A count has no deadline.
FUZZTIME ?= 20000x

.PHONY: fuzz
fuzz: ## Run each fuzz target for FUZZTIME executions (default 20000x); the checked-in corpus also runs in make test.
	go test ./internal/twilio/ -run '^$$' -fuzz '^FuzzDecodeConfiguration$$' -fuzztime $(FUZZTIME)
	go test ./internal/twilio/ -run '^$$' -fuzz '^FuzzWebhookAnswer$$' -fuzztime $(FUZZTIME)
	go test ./internal/controller/ -run '^$$' -fuzz '^FuzzConfigMatches$$' -fuzztime $(FUZZTIME)

CHAOS_N ?= 200
CHAOS_SECONDS ?= 60

.PHONY: test-chaos
test-chaos: build setup-envtest ## Chaos suite: 50-200 ms Twilio, faults on 20% of calls, churn, killed and frozen leaders; nothing lost (CHAOS_N, CHAOS_SECONDS, CHAOS_SEED, CHAOS_FAULTS, CHAOS_ANNOTATIONS=off, CHAOS_FREEZE=off, CHAOS_MAX_INFLIGHT: the account's in-flight cap, default 8, 0 none).
	KUBEBUILDER_ASSETS="$$(SETUP_ENVTEST=$(SETUP_ENVTEST) ENVTEST_K8S_VERSION=$(ENVTEST_K8S_VERSION) hack/envtest-assets.sh)" \
		CHAOS_N=$(CHAOS_N) CHAOS_SECONDS=$(CHAOS_SECONDS) go test -tags chaos ./test/chaos/ -count=1 -timeout 20m -v -run TestChaos

BENCH_N ?= 1000

.PHONY: bench
bench: build setup-envtest ## Benchmark against the fake's account limits (BENCH_MODE=rate|concurrency, BENCH_N, default 1000); report in test/bench/results/. Not a test.
	KUBEBUILDER_ASSETS="$$(SETUP_ENVTEST=$(SETUP_ENVTEST) ENVTEST_K8S_VERSION=$(ENVTEST_K8S_VERSION) hack/envtest-assets.sh)" \
		BENCH_N=$(BENCH_N) go run ./test/bench
