#!/bin/sh
# Entrypoint of the sample image: decides whether this StatefulSet pod founds the cluster or joins it, then execs the
# app so that node is PID 1 and gets SIGTERM itself (a leader hands leadership over on it).
#
# Pods are named <set>-<ordinal>. Ordinal 0 founds a cluster of itself (CATGA_MEMBERS); every other pod joins through
# the pods with a lower ordinal (CATGA_JOIN), which exist whether pods start in order or in parallel. Both only seed
# an empty data dir: a node with state goes by the membership stored in its log. CATGA_MEMBERS or CATGA_JOIN set on
# the container win, for example to let catga-0 join the others after its volume was lost.
set -eu
: "${CATGA_NODE_ID:?set CATGA_NODE_ID to the pod name}"
: "${CATGA_ADVERTISE:?set CATGA_ADVERTISE to <pod>.<headless service>.<namespace>.svc.<domain>:<port>}"

if [ -z "${CATGA_MEMBERS:-}" ] && [ -z "${CATGA_JOIN:-}" ]; then
  set_name=${CATGA_NODE_ID%-*}
  ordinal=${CATGA_NODE_ID##*-}
  peer_suffix=${CATGA_ADVERTISE#"$CATGA_NODE_ID".} # <service>.<namespace>.svc.<domain>:<port>, the same for every pod
  case "$ordinal" in '' | *[!0-9]*)
    echo "catga-entrypoint: CATGA_NODE_ID '$CATGA_NODE_ID' is not a StatefulSet pod name (<set>-<ordinal>)" >&2
    exit 64 ;;
  esac
  if [ "$peer_suffix" = "$CATGA_ADVERTISE" ]; then
    echo "catga-entrypoint: CATGA_ADVERTISE '$CATGA_ADVERTISE' must start with '$CATGA_NODE_ID.'" >&2
    exit 64
  fi
  if [ "$ordinal" -eq 0 ]; then
    export CATGA_MEMBERS="$CATGA_NODE_ID=$CATGA_ADVERTISE"
  else
    seeds='' i=0
    while [ "$i" -lt "$ordinal" ]; do
      seeds="$seeds${seeds:+,}$set_name-$i.$peer_suffix"
      i=$((i + 1))
    done
    export CATGA_JOIN="$seeds"
  fi
fi

exec "$@"
