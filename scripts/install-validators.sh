#!/usr/bin/env bash
# Installs the independent validators `npm run verify` runs on dist/, idempotently; binaries go to .tools/bin,
# Python tools to virtual environments under .tools/. Everything works offline once installed.
#   kube-score           Kubernetes linter (Go module proxy, built from source)
#   kubernetes-validate  strict Kubernetes 1.28 JSON-schema check, rejects unknown fields (PyPI)
#   checkov              Kubernetes and Dockerfile policy scanner (PyPI), standing in for kube-linter (below)
#   docker-compose, yamllint  Debian packages; dockerfile-utils, dockerfilelint  root devDependencies (npm ci)
# kube-linter cannot be installed here: its module path golang.stackrox.io is not on the Go module proxy's
# host allowlist (403), and it has no npm or PyPI package. checkov covers its security checks.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools="$root/.tools"
bin="$tools/bin"
KUBE_SCORE_VERSION=v1.20.0
KUBERNETES_VALIDATE_VERSION=1.28.3
CHECKOV_VERSION=3.3.30

log() { printf '[install-validators] %s\n' "$*" >&2; }
mkdir -p "$bin"

# Debian packages (docker-compose 1.29, yamllint); bootstrap.sh knows how to install them.
bash "$root/scripts/bootstrap.sh" validators

install_kube_score() {
  local out="$bin/kube-score"
  if [ -x "$out" ] && "$out" version 2>/dev/null | grep -q "${KUBE_SCORE_VERSION#v}"; then return 0; fi
  command -v go >/dev/null || { log "go is required to build kube-score (apt-get install golang-go)"; return 1; }
  log "building kube-score $KUBE_SCORE_VERSION"
  local work
  work=$(mktemp -d)
  # `go install …@version` fails here on the proxy's deprecation lookup; a throwaway module works.
  (cd "$work" && go mod init kube-score-build >/dev/null 2>&1 &&
    go get "github.com/zegl/kube-score/cmd/kube-score@$KUBE_SCORE_VERSION" >/dev/null 2>&1 &&
    go build -ldflags "-X main.version=${KUBE_SCORE_VERSION#v}" -o "$out" github.com/zegl/kube-score/cmd/kube-score)
  rm -rf "$work"
}

# pip into its own venv, then link the entry point into .tools/bin.
install_pip_tool() {
  local name=$1 spec=$2 version=$3 venv="$tools/venv-$1"
  if [ -x "$bin/$name" ] && [ "$("$venv/bin/pip" show "$name" 2>/dev/null | sed -n 's/^Version: //p')" = "$version" ]; then
    return 0
  fi
  log "installing $spec into .tools/venv-$name"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "$spec"
  ln -sf "$venv/bin/$name" "$bin/$name"
}

install_npm_tools() {
  # Root devDependencies: present after `npm ci` (bootstrap.sh deps).
  local missing=0
  for t in dockerfile-utils dockerfilelint; do
    [ -x "$root/node_modules/.bin/$t" ] || missing=1
  done
  if [ $missing -eq 1 ]; then bash "$root/scripts/bootstrap.sh" node deps; fi
}

install_kube_score
install_pip_tool kubernetes-validate "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" "$KUBERNETES_VALIDATE_VERSION"
install_pip_tool checkov "checkov==$CHECKOV_VERSION" "$CHECKOV_VERSION"
install_npm_tools
log "validators ready in .tools/bin"
