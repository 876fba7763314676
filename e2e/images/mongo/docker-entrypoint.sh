#!/bin/sh
# Entry point of the e2e MongoDB stand-in: `mongod` runs FerretDB on the official image's port and data directory.
# MONGO_INITDB_ROOT_USERNAME and MONGO_INITDB_ROOT_PASSWORD(_FILE), as the official image reads them, become the
# FerretDB setup user in the admin database (SCRAM); without them the server accepts unauthenticated clients, as
# mongod does. Any other command runs as given.
# @see https://docs.ferretdb.io/v1.24/security/authentication/
# @see https://github.com/docker-library/mongo/blob/master/docker-entrypoint.sh
set -eu
if [ "${1:-}" = mongod ]; then
  shift
  if [ -n "${MONGO_INITDB_ROOT_PASSWORD_FILE:-}" ]; then
    MONGO_INITDB_ROOT_PASSWORD=$(cat "$MONGO_INITDB_ROOT_PASSWORD_FILE")
  fi
  if [ -n "${MONGO_INITDB_ROOT_USERNAME:-}" ]; then
    export FERRETDB_TEST_ENABLE_NEW_AUTH=true FERRETDB_SETUP_DATABASE=admin
    export FERRETDB_SETUP_USERNAME="$MONGO_INITDB_ROOT_USERNAME" FERRETDB_SETUP_PASSWORD="${MONGO_INITDB_ROOT_PASSWORD:-}"
  fi
  unset MONGO_INITDB_ROOT_PASSWORD
  exec ferretdb --handler=sqlite --sqlite-url=file:/data/db/ --state-dir=/data/db --listen-addr=:27017 \
    --telemetry=disable --log-format=text "$@"
fi
exec "$@"
