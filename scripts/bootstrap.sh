#!/usr/bin/env bash
# Installs what a fresh machine lacks, idempotently. Parts: node deps servers browser validators (default: node deps).
#   node        Node 24 and npm 11.6.2 under .tools/ (the system Node may be older) from the npm registry's `node`
#               and `npm` packages (the `node` package carries no npm); 11.6.2 is the npm of the synthesized
#               Dockerfiles' Node image, so the lockfiles install here with the same npm as in the images
#   deps        npm ci for the root and services/ when package-lock.json changed
#   servers     RabbitMQ (Debian's rabbitmq-server) and FerretDB (built from the Go module proxy) for integration tests
#   ferretdb    only the FerretDB binary (.tools/bin/ferretdb, static); the e2e's MongoDB-wire image copies it
#   browser     Debian's chromium for the browser test
#   bench       the benchmarks' npm packages, Debian's redis-server (BullMQ baseline) and postgresql (FerretDB's backend)
#   schemas     the compose-spec JSON schema as Compose v2 embeds it (Go module compose-go), into .tools/schemas/
#   validators  docker-compose, yamllint, shellcheck (Debian), kubernetes-validate (PyPI), the schemas above
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools="$root/.tools"
NODE_MAJOR=24
NPM_VERSION=11.6.2
FERRETDB_VERSION=v1.24.2
# The newest compose-go this Go (1.26.8, Debian's host toolchain here) accepts; v2.17 asks for go >= 1.26.11.
COMPOSE_GO_VERSION=v2.16.2

log() { printf '[bootstrap] %s\n' "$*" >&2; }

apt_updated=0
apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    log "missing Debian packages: ${missing[*]} (run as root or install them: apt-get install ${missing[*]})"
    return 1
  fi
  if [ $apt_updated -eq 0 ]; then
    log "apt-get update"
    apt-get update -qq
    apt_updated=1
  fi
  log "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

part_node() {
  local node="$tools/node_modules/.bin/node"
  local npm="$tools/node_modules/.bin/npm"
  if [ -x "$node" ] && [ -x "$npm" ] && [ "$("$node" -p 'process.versions.node.split(".")[0]')" = "$NODE_MAJOR" ] &&
    [ "$("$npm" --version)" = "$NPM_VERSION" ]; then
    return 0
  fi
  log "installing Node $NODE_MAJOR and npm $NPM_VERSION into .tools/"
  mkdir -p "$tools"
  npm install --prefix "$tools" --no-audit --no-fund --loglevel=error "node@$NODE_MAJOR" "npm@$NPM_VERSION" >/dev/null
  "$node" --version >/dev/null
}

# npm ci only when the lockfile differs from the one the installed tree came from.
ci_if_needed() {
  local dir=$1
  local stamp="$dir/node_modules/.package-lock.json"
  if [ -f "$stamp" ] && [ "$dir/node_modules/.bootstrap-stamp" -nt "$dir/package-lock.json" ]; then return 0; fi
  local name=.
  [ "$dir" = "$root" ] || name=${dir#"$root"/}
  log "npm ci in $name"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  touch "$dir/node_modules/.bootstrap-stamp"
}

part_deps() {
  export PATH="$tools/node_modules/.bin:$PATH"
  ci_if_needed "$root"
  ci_if_needed "$root/services"
}

# The benchmarks' own dependencies (autocannon, BullMQ) and Redis, the baseline queue they compare against.
part_bench() {
  export PATH="$tools/node_modules/.bin:$PATH"
  ci_if_needed "$root/bench"
  # PostgreSQL: the backend of the FerretDB the benchmarks use by default (bench/lib/servers.ts starts its own
  # throwaway cluster; the package's default one is not used).
  apt_install redis-server postgresql
  if command -v systemctl >/dev/null 2>&1; then
    for unit in redis-server postgresql; do
      if systemctl is-active --quiet "$unit" 2>/dev/null; then systemctl stop "$unit" || true; fi
    done
  fi
}

part_servers() {
  apt_install rabbitmq-server
  # The package starts a system-wide node; tests run their own isolated nodes, so stop it to free the ports.
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet rabbitmq-server 2>/dev/null; then
    systemctl stop rabbitmq-server || true
  fi
  part_ferretdb
}

# FerretDB, static (CGO_ENABLED=0; its SQLite driver is pure Go), so the e2e's MongoDB-wire image can carry the
# same binary the tests use whatever the host's libc.
part_ferretdb() {
  local ferret="$tools/bin/ferretdb"
  if [ ! -x "$ferret" ] || ! "$ferret" --version 2>/dev/null | grep -q "version: $FERRETDB_VERSION\$" ||
    ldd "$ferret" >/dev/null 2>&1; then
    command -v go >/dev/null || apt_install golang-go
    log "building FerretDB $FERRETDB_VERSION (a few minutes on first run)"
    local work src
    work=$(mktemp -d)
    # `go install …@version` fails here on the proxy's deprecation lookup, and a binary built from the module
    # cache panics for want of build/version/version.txt (the project generates it in its own build), so build
    # a copy of the module source with that file added.
    (cd "$work" && go mod init ferretdb-build >/dev/null 2>&1 &&
      go get "github.com/FerretDB/FerretDB@$FERRETDB_VERSION" >/dev/null 2>&1)
    src=$(cd "$work" && go list -m -f '{{.Dir}}' github.com/FerretDB/FerretDB)
    cp -r "$src" "$work/src"
    chmod -R u+w "$work/src"
    echo "$FERRETDB_VERSION" >"$work/src/build/version/version.txt"
    mkdir -p "$tools/bin"
    (cd "$work/src" && CGO_ENABLED=0 go build -trimpath -o "$ferret.partial" ./cmd/ferretdb)
    mv "$ferret.partial" "$ferret"
    rm -rf "$work"
    "$ferret" --version >/dev/null
  fi
}

part_browser() {
  apt_install chromium
}

# The schema Compose v2 validates every file against, from compose-go (the library Compose v2 is built on), not a
# copy kept by hand: the Go module proxy serves it by version, and `go mod download` checks it against the checksum
# database. The tests and `npm run verify` read it from .tools/schemas/ (verify/validators.ts).
part_schemas() {
  local dir="$tools/schemas"
  if [ -f "$dir/compose-spec.json" ] && [ "$(cat "$dir/compose-spec.version" 2>/dev/null)" = "$COMPOSE_GO_VERSION" ]; then
    return 0
  fi
  command -v go >/dev/null || apt_install golang-go
  log "compose-spec schema from compose-go $COMPOSE_GO_VERSION"
  local work src
  work=$(mktemp -d)
  src=$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "github.com/compose-spec/compose-go/v2@$COMPOSE_GO_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  rm -rf "$work"
  if [ -z "$src" ] || [ ! -f "$src/schema/compose-spec.json" ]; then
    log "could not download github.com/compose-spec/compose-go/v2@$COMPOSE_GO_VERSION from the Go module proxy"
    return 1
  fi
  mkdir -p "$dir"
  cp "$src/schema/compose-spec.json" "$dir/compose-spec.json"
  chmod u+w "$dir/compose-spec.json"
  echo "$COMPOSE_GO_VERSION" >"$dir/compose-spec.version"
}

part_validators() {
  apt_install docker-compose yamllint shellcheck
  part_schemas
  # PyPI's kubernetes-validate for test/k8s; `npm run verify`'s own linters: scripts/install-validators.sh.
  sh "$root/scripts/install-k8s-validators.sh" >/dev/null
}

parts=("$@")
[ ${#parts[@]} -eq 0 ] && parts=(node deps)
for part in "${parts[@]}"; do
  case "$part" in
    node | deps | servers | ferretdb | browser | schemas | validators | bench) "part_$part" ;;
    all) part_node; part_deps; part_servers; part_browser; part_validators; part_bench ;;
    *) log "unknown part '$part'; expected node, deps, servers, ferretdb, browser, schemas, validators, bench or all"; exit 2 ;;
  esac
done
