#!/usr/bin/env bash
# Builds the Go parts of the test rig from the Go module proxy, cached by version:
#   kube-apiserver and kube-scheduler (k8s.io/kubernetes), etcd (go.etcd.io/etcd/server/v3), kwok.
# Usage: rig/build-go.sh OUT_DIR KUBE_VERSION ETCD_VERSION KWOK_VERSION
# Each binary lands in OUT_DIR/<name>-<version>/<name>; an existing one is reused.
set -euo pipefail
out=$1 kube=$2 etcd=$3 kwok=$4
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local
mkdir -p "$out"

build_kube() {
  # kube-apiserver, plus kube-scheduler so that pods are bound to kwok's nodes by their
  # requests, as in a real cluster (the capacity check depends on it).
  local dest="$out/kube-$kube"
  [ -x "$dest/kube-apiserver" ] && [ -x "$dest/kube-scheduler" ] && return 0
  echo "== building kube-apiserver and kube-scheduler $kube (go build -v: one line per package)"
  local work; work=$(mktemp -d)
  # k8s.io/kubernetes points its staging modules at ./staging, which a module download lacks:
  # a wrapper module replaces each with the published k8s.io/<m> v0.<minor>.<patch>.
  go mod download -json "k8s.io/kubernetes@$kube" >/dev/null
  local gomod; gomod=$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/$kube.mod
  local staging="v0.${kube#v1.}"
  {
    echo "module rigbuild"
    grep -E '^(go|godebug) ' "$gomod"
    echo "require k8s.io/kubernetes $kube"
    grep -E '=> \./staging' "$gomod" | awk -v v="$staging" '{print "replace " $1 " => " $1 " " v}'
  } > "$work/go.mod"
  printf 'package main\nimport (\n_ "k8s.io/kubernetes/cmd/kube-apiserver/app"\n_ "k8s.io/kubernetes/cmd/kube-scheduler/app"\n)\nfunc main() {}\n' > "$work/main.go"
  (cd "$work" && go mod tidy >/dev/null 2>&1 || true
   cd "$work" && go get "k8s.io/kubernetes/cmd/kube-apiserver@$kube" && \
     go build -v -trimpath -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$kube -X k8s.io/client-go/pkg/version.gitVersion=$kube" \
       -o "$dest.tmp/" k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-scheduler)
  mv "$dest.tmp" "$dest"; rm -rf "$work"
}

build_etcd() {
  local dest="$out/etcd-$etcd"
  [ -x "$dest/etcd" ] && return 0
  echo "== building etcd $etcd"
  local work; work=$(mktemp -d)
  printf 'module rigbuild\ngo 1.24\n' > "$work/go.mod"
  printf 'package main\nimport _ "go.etcd.io/etcd/server/v3/etcdmain"\nfunc main() {}\n' > "$work/main.go"
  (cd "$work" && go get "go.etcd.io/etcd/server/v3@$etcd" && go mod tidy >/dev/null 2>&1 || true
   cd "$work" && go build -trimpath -ldflags "-s -w" -o "$dest.tmp/etcd" go.etcd.io/etcd/server/v3)
  mv "$dest.tmp" "$dest"; rm -rf "$work"
}

build_kwok() {
  local dest="$out/kwok-$kwok"
  [ -x "$dest/kwok" ] && return 0
  echo "== building kwok $kwok"
  GOBIN="$dest.tmp" go install "sigs.k8s.io/kwok/cmd/kwok@$kwok"
  mv "$dest.tmp" "$dest"
}

build_etcd
build_kwok
build_kube
