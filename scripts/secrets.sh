#!/usr/bin/env bash
# Creates random secret files for an environment under .secrets/<env>/ (gitignored), where the Compose and
# Swarm files read them. Existing files are kept. Usage: npm run secrets -- dev
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
env=${1:-dev}
case "$env" in *[!a-z0-9-]* | "") echo "secrets: got environment '$env', expected a name such as dev or prod" >&2; exit 2 ;; esac
dir="$root/.secrets/$env"
mkdir -p "$dir"
chmod 700 "$dir"
for name in mongo-keyfile mongo-password rabbitmq-erlang-cookie rabbitmq-password; do
  if [ ! -s "$dir/$name" ]; then
    head -c 24 /dev/urandom | base64 | tr -d '/+=\n' >"$dir/$name"
    # Compose outside Swarm bind-mounts file secrets with their host owner and mode, and the containers run as
    # other users (10001, 999); the 0700 directory keeps other host users out.
    chmod 0644 "$dir/$name"
    echo "created .secrets/$env/$name"
  fi
done
