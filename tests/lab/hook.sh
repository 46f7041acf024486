#!/bin/sh
# roadie's readdress hook in the lab. roadie runs it inside the router
# namespace after it moved the LAN. It records its environment (one line per
# run, tab-separated key=value) and moves the cluster node to the same host
# offset in the new prefix.
#
# Set by the lab's wrapper (<lab dir>/hook.sh):
#   LAB_HOOK_LOG     file to append the record to
#   LAB_CL_NS        the cluster node's network namespace
#   LAB_NODE_OFFSET  the node's host offset in the LAN prefix (e.g. 100)
set -eu

printf 'OLD=%s\tNEW=%s\tLAN=%s\tREASON=%s\n' \
	"${ROADIE_OLD_PREFIX-}" "${ROADIE_NEW_PREFIX-}" "${ROADIE_LAN_ADDRESS-}" \
	"${ROADIE_REASON-}" >>"$LAB_HOOK_LOG"

net=${ROADIE_NEW_PREFIX%/*}
len=${ROADIE_NEW_PREFIX#*/}
old_ifs=$IFS
IFS=.
# shellcheck disable=SC2086
set -- $net
IFS=$old_ifs
n=$(( ($1 << 24) + ($2 << 16) + ($3 << 8) + $4 + LAB_NODE_OFFSET ))
node="$(( (n >> 24) & 255 )).$(( (n >> 16) & 255 )).$(( (n >> 8) & 255 )).$(( n & 255 ))"

ip -n "$LAB_CL_NS" -4 addr flush dev eth0
ip -n "$LAB_CL_NS" addr add "$node/$len" dev eth0
