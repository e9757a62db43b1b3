#!/bin/sh
# Entrypoint of the Compose image (Dockerfile beside this file): reads the cluster secret from Compose secret files
# into the variables the library reads, then execs the command, so node is PID 1 and gets SIGTERM itself (a leader
# hands leadership over on it).
#
#   $dir/catga_secret            -> CATGA_SECRET           (required unless CATGA_SECRET is set)
#   $dir/catga_secret_accepted   -> CATGA_SECRET_ACCEPTED  (only while the secret is rotated; see docs/deploy.md)
#
# $dir is CATGA_SECRETS_DIR, by default /run/secrets, where Compose mounts secrets. $(cat …) drops trailing newlines,
# as `catga-cluster snapshot save --secret-file` does, so a file written by `echo` works everywhere alike.
set -eu
dir=${CATGA_SECRETS_DIR:-/run/secrets}
if [ -z "${CATGA_SECRET:-}" ]; then
  if [ ! -r "$dir/catga_secret" ]; then
    echo "catga-compose-entrypoint: no cluster secret: $dir/catga_secret is missing or not readable by uid $(id -u)" >&2
    exit 64
  fi
  CATGA_SECRET=$(cat "$dir/catga_secret")
  export CATGA_SECRET
fi
if [ -z "${CATGA_SECRET_ACCEPTED:-}" ] && [ -r "$dir/catga_secret_accepted" ]; then
  CATGA_SECRET_ACCEPTED=$(cat "$dir/catga_secret_accepted")
  export CATGA_SECRET_ACCEPTED
fi
exec "$@"
