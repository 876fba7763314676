#!/usr/bin/env bash
# Creates random secret files for an environment under .secrets/<env>/ (gitignored), where the Compose and
# Swarm files read them. Existing files are kept. Usage: npm run secrets -- dev
# The api-keys file gets a first client, "admin" with the scope jobs:admin; its token is printed once, here, and
# only its sha256 is stored (the producer never sees the token itself until a client sends it).
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

keys="$dir/api-keys"
if [ ! -s "$keys" ]; then
  token=$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
  hash=$(printf %s "$token" | sha256sum | cut -d' ' -f1)
  {
    cat <<'EOF'
# API clients of the producer: <client-id> <scopes> <sha256 hex of the token>; scopes comma-separated from
# jobs:submit, jobs:read, jobs:admin. A new client: token=$(head -c 32 /dev/urandom | base64 | tr -d '+/=\n'),
# then append "<id> <scopes> $(printf %s "$token" | sha256sum | cut -d' ' -f1)". The producer re-reads this file
# within seconds of a change (rotation without a restart).
EOF
    echo "admin jobs:admin $hash"
  } >"$keys"
  chmod 0644 "$keys"
  echo "created .secrets/$env/api-keys with the client \"admin\" (jobs:admin); its token, shown only now:"
  echo "  $token"
fi
