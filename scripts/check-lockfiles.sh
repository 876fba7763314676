#!/usr/bin/env bash
# Fails on a lockfile a user's npm would refuse, before anything is installed from it:
#   1. an entry under `packages` without a `version` (npm 10 and 11 both stop with "Invalid Version:");
#   2. a lockfile that `npm ci` of the npm on PATH refuses (out of sync with package.json, or unreadable).
# .ci/run runs it with the npm bootstrap.sh installs (11.6.2, the npm that Node 24.11 bundles and that the
# synthesized Dockerfiles run). `npm ci --dry-run` resolves the tree from the lockfile without writing node_modules.
# Regenerate a refused lockfile with `npm install --package-lock-only`; never edit one by hand.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dirs=(. services bench)
status=0
for dir in "${dirs[@]}"; do
  lock="$root/$dir/package-lock.json"
  name="${dir#./}/package-lock.json"
  name="${name#./}"
  if [ ! -f "$lock" ]; then
    echo "[lockfiles] $name: missing (run npm install --package-lock-only in $dir)" >&2
    status=1
    continue
  fi
  # shellcheck disable=SC2016 # the JavaScript's template literals are not shell expansions
  if ! node -e '
    const [file, name] = process.argv.slice(1);
    const lock = JSON.parse(require("fs").readFileSync(file, "utf8"));
    const bad = Object.entries(lock.packages ?? {}).filter(([k, v]) => k !== "" && !v.link && typeof v.version !== "string");
    for (const [k] of bad) console.error(`[lockfiles] ${name}: packages["${k}"] has no version, expected every installed entry to have one`);
    process.exit(bad.length > 0 ? 1 : 0);
  ' "$lock" "$name"; then
    status=1
    continue
  fi
  if ! out=$(cd "$root/$dir" && npm ci --dry-run --ignore-scripts --no-audit --no-fund --loglevel=error 2>&1); then
    echo "[lockfiles] $name: npm $(npm --version) ci refuses it:" >&2
    echo "$out" | sed -e '/Clean install a project/,$d' -e '/A complete log/d' -e 's/^/  /' >&2
    status=1
    continue
  fi
  echo "[lockfiles] $name: accepted by npm $(npm --version) ci"
done
exit $status
