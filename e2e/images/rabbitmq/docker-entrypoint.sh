#!/bin/sh
# Entry point of the e2e RabbitMQ image: what the official image's entrypoint does for the variables the synthesized
# files set. RABBITMQ_DEFAULT_USER/PASS/VHOST become default_user/default_pass/default_vhost in a config file written
# to /tmp (a tmpfs in every synthesized target; the root filesystem is read-only), so the password never lands on
# the data volume. Any other command runs as given.
# @see https://www.rabbitmq.com/docs/configure#config-items
set -eu
if [ "${1:-}" = rabbitmq-server ]; then
  conf=${RABBITMQ_CONFIG_FILE:-/tmp/rabbitmq-e2e/rabbitmq.conf}
  mkdir -p "$(dirname "$conf")"
  umask 077
  {
    echo 'loopback_users = none'
    echo 'log.console = true'
    echo 'log.console.level = info'
    echo 'log.file = false'
    if [ -n "${RABBITMQ_DEFAULT_USER:-}" ]; then echo "default_user = ${RABBITMQ_DEFAULT_USER}"; fi
    if [ -n "${RABBITMQ_DEFAULT_PASS:-}" ]; then echo "default_pass = ${RABBITMQ_DEFAULT_PASS}"; fi
    if [ -n "${RABBITMQ_DEFAULT_VHOST:-}" ]; then echo "default_vhost = ${RABBITMQ_DEFAULT_VHOST}"; fi
  } > "$conf"
  # The variables are now in the file; RabbitMQ 3.10 would otherwise also read them and log them at startup.
  unset RABBITMQ_DEFAULT_USER RABBITMQ_DEFAULT_PASS RABBITMQ_DEFAULT_VHOST
fi
exec "$@"
