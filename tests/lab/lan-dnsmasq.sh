#!/bin/sh
# The cluster segment's dnsmasq in the 4-client lab (tests/follow_lab.rs),
# configured the way OpenWrt's dnsmasq.init writes it: authoritative, a
# dynamic range in the LAN, host reservations by MAC, and the package's
# short renew times (option 58 T1 = 30 s, option 59 T2 = 90 s, lease 2m,
# dnsmasq's shortest). Also roadie's readdress hook there: then the prefix is
# ROADIE_NEW_PREFIX and the reservations keep their host offsets.
#
#   lan-dnsmasq.sh [PREFIX]   (re)start dnsmasq for PREFIX (e.g. 10.9.8.0/24)
#
# Set by the lab:
#   LAB_DIR     where dnsmasq.conf, dnsmasq.pid, dnsmasq.log and leases go
#   LAB_IF      the LAN interface (br-lan)
#   LAB_HOSTS   reservations, "MAC,OFFSET,NAME" separated by spaces
# Restarting (as OpenWrt's init script does after a uci change) stops the
# running dnsmasq by the PID it recorded, then starts the new one, which
# records its own.
set -eu

prefix=${1:-${ROADIE_NEW_PREFIX:?no prefix given}}
net=${prefix%/*}
len=${prefix#*/}
[ "$len" = 24 ] || { echo "lan-dnsmasq.sh: only /24 LANs in this lab, got $prefix" >&2; exit 1; }
base=${net%.*}

conf=$LAB_DIR/dnsmasq.conf
pidfile=$LAB_DIR/dnsmasq.pid
{
	echo "# written by tests/lab/lan-dnsmasq.sh for $prefix"
	echo "port=0"
	echo "interface=$LAB_IF"
	echo "bind-dynamic"
	echo "dhcp-authoritative"
	echo "user=root"
	echo "dhcp-leasefile=$LAB_DIR/leases"
	echo "pid-file=$pidfile"
	echo "log-facility=$LAB_DIR/dnsmasq.log"
	echo "log-dhcp"
	echo "dhcp-range=set:lan,$base.150,$base.249,255.255.255.0,2m"
	echo "dhcp-option=lan,58,30"
	echo "dhcp-option=lan,59,90"
	for h in $LAB_HOSTS; do
		mac=${h%%,*}
		rest=${h#*,}
		echo "dhcp-host=$mac,$base.${rest%%,*},${rest#*,}"
	done
} >"$conf.new"
mv "$conf.new" "$conf"

if [ -s "$pidfile" ]; then
	old=$(cat "$pidfile")
	if kill "$old" 2>/dev/null; then
		# Wait (bounded) until it is gone, so the new one can bind port 67.
		n=0
		while [ -d "/proc/$old" ] && [ "$n" -lt 100 ]; do
			sleep 0.05
			n=$((n + 1))
		done
	fi
	rm -f "$pidfile"
fi
# Its leases belong to the old prefix (OpenWrt keeps /tmp/dhcp.leases, but
# dnsmasq drops leases outside its ranges anyway).
rm -f "$LAB_DIR/leases"
# dnsmasq forks into the background and writes its PID to $pidfile; its
# output goes to its log, so whoever runs this script is not held up.
dnsmasq -C "$conf" </dev/null >>"$LAB_DIR/dnsmasq.log" 2>&1
echo "lan-dnsmasq.sh: dnsmasq $(cat "$pidfile") serving $prefix" >>"$LAB_DIR/dnsmasq.log"
