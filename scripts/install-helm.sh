#!/usr/bin/env bash
# Install the helm CLI (used by tests/deploy to lint and render helm/ledgerflow).
#
# Helm is built from source with `go install` through the Go module proxy, so no binary
# download from outside the registries is needed. Idempotent: does nothing when helm is
# already on PATH or in Go's bin folder. Prints where helm is.
#
#   scripts/install-helm.sh                 # v3.16.4
#   HELM_VERSION=v3.17.0 HELM_K8S_MINOR=32 scripts/install-helm.sh
#
# A first build takes a few minutes on 2 cores (HELM_BUILD_JOBS limits parallel compiles).
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v3.16.4}"
# Kubernetes minor version of the client-go the chosen release builds with (v3.16: 1.31). Helm's
# own Makefile stamps it in; without it `helm template` assumes Kubernetes 1.20.
HELM_K8S_MINOR="${HELM_K8S_MINOR:-31}"
HELM_BUILD_JOBS="${HELM_BUILD_JOBS:-2}"

if existing="$(command -v helm 2>/dev/null)"; then
    echo "helm already installed: ${existing}"
    exit 0
fi

if ! command -v go >/dev/null 2>&1; then
    echo "error: go is not on PATH; helm is built with 'go install'" >&2
    exit 1
fi

gobin="$(go env GOBIN)"
if [[ -z "${gobin}" ]]; then
    gobin="$(go env GOPATH)/bin"
fi
for candidate in "${gobin}/helm" "$(go env GOPATH)/bin/helm"; do
    if [[ -x "${candidate}" ]]; then
        echo "helm already installed: ${candidate}"
        exit 0
    fi
done

ldflags="-X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}"
ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
    ldflags+=" -X ${pkg}.k8sVersionMajor=1 -X ${pkg}.k8sVersionMinor=${HELM_K8S_MINOR}"
done

echo "building helm ${HELM_VERSION} with go install (module proxy: $(go env GOPROXY))..." >&2
start=${SECONDS}
go install -p "${HELM_BUILD_JOBS}" -ldflags "${ldflags}" "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}"
echo "built in $((SECONDS - start)) s" >&2

"${gobin}/helm" version --short >&2
echo "helm installed: ${gobin}/helm"
case ":${PATH}:" in
    *":${gobin}:"*) ;;
    *) echo "note: ${gobin} is not on PATH; tests/deploy finds helm there anyway" >&2 ;;
esac
