#!/usr/bin/env bash
# envtest-assets.sh prints a directory holding kube-apiserver and etcd for envtest.
#
# Order of preference:
#   1. KUBEBUILDER_ASSETS set by the user (and holding kube-apiserver): used as is.
#   2. Binaries already in setup-envtest's store (BIN_DIR/k8s/VERSION-OS-ARCH).
#   3. setup-envtest's own download.
#   4. A build from source through the Go module proxy: kube-apiserver from
#      k8s.io/kubernetes via a throwaway wrapper module, etcd from
#      go.etcd.io/etcd/server/v3. About 8 minutes cold on 2 cores, once per machine.
#
# Everything but the final directory goes to stderr, so callers can write
#   export KUBEBUILDER_ASSETS="$(hack/envtest-assets.sh)"
set -euo pipefail

K8S_VERSION="${ENVTEST_K8S_VERSION:-1.37.2}"
ETCD_VERSION="${ENVTEST_ETCD_VERSION:-v3.7.3}"
BIN_DIR="${ENVTEST_BIN_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/kubebuilder-envtest}"
SETUP_ENVTEST="${SETUP_ENVTEST:-}"
GOOS="$(go env GOOS)"
GOARCH="$(go env GOARCH)"
STORE_DIR="$BIN_DIR/k8s/$K8S_VERSION-$GOOS-$GOARCH"

log() { echo "envtest-assets: $*" >&2; }

if [[ -n "${KUBEBUILDER_ASSETS:-}" && -x "${KUBEBUILDER_ASSETS}/kube-apiserver" ]]; then
  echo "$KUBEBUILDER_ASSETS"
  exit 0
fi

have_binaries() { [[ -x "$STORE_DIR/kube-apiserver" && -x "$STORE_DIR/etcd" ]]; }

mkdir -p "$BIN_DIR"
# Serialise: two test packages or make -j must not build the same cache twice.
exec 9>"$BIN_DIR/.conversation-webhook-operator.lock"
flock 9

if have_binaries; then
  echo "$STORE_DIR"
  exit 0
fi

if [[ -n "$SETUP_ENVTEST" && -x "$SETUP_ENVTEST" && -z "${ENVTEST_FORCE_BUILD:-}" ]]; then
  log "trying setup-envtest download of $K8S_VERSION"
  if dir="$(timeout 120 "$SETUP_ENVTEST" use --bin-dir "$BIN_DIR" "$K8S_VERSION" -p path 2>/dev/null)" \
      && [[ -x "$dir/kube-apiserver" && -x "$dir/etcd" ]]; then
    echo "$dir"
    exit 0
  fi
  log "download unavailable; building kube-apiserver $K8S_VERSION and etcd $ETCD_VERSION from source (about 8 minutes, once per machine)"
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
staging="$work/out"
mkdir -p "$staging"
minor="${K8S_VERSION#*.}"; minor="${minor%%.*}"
staging_version="v0.${minor}.${K8S_VERSION##*.}"

# kube-apiserver: k8s.io/kubernetes requires its staging modules at v0.0.0 and
# replaces them with ./staging, which Go ignores for a dependency. A wrapper
# module pins each of them to the published staging version.
mkdir -p "$work/apiserver"
(
  cd "$work/apiserver"
  go mod init envtest.local/apiserver >/dev/null 2>&1
  gomod="$(go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
  [[ -f "$gomod" ]] || { log "cannot read k8s.io/kubernetes go.mod"; exit 1; }
  go mod edit -require="k8s.io/kubernetes@v$K8S_VERSION"
  for m in $(awk '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" {print $1} $1 == "require" && $2 ~ /^k8s\.io\// && $3 == "v0.0.0" {print $2}' "$gomod" | sort -u); do
    go mod edit -replace="$m=$m@$staging_version"
  done
  go get -tool "k8s.io/kubernetes/cmd/kube-apiserver@v$K8S_VERSION" >&2
  date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=v$K8S_VERSION -X $pkg.gitMajor=${K8S_VERSION%%.*} -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$date"
  done
  CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$staging/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver >&2
) >&2

mkdir -p "$work/etcd"
(
  cd "$work/etcd"
  go mod init envtest.local/etcd >/dev/null 2>&1
  go get -tool "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$staging/etcd" go.etcd.io/etcd/server/v3 >&2
) >&2

# With `setup-envtest use -i` the directory's existence means "installed":
# create it only once both binaries are in place.
mkdir -p "$BIN_DIR/k8s"
rm -rf "$STORE_DIR.partial"
mv "$staging" "$STORE_DIR.partial"
mv "$STORE_DIR.partial" "$STORE_DIR"
log "built into $STORE_DIR"
echo "$STORE_DIR"
