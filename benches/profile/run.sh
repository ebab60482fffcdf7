#!/usr/bin/env bash
# Profiles a 3-member cluster while one timon-bench workload runs, and
# prints where the members' CPU went by category (categories.py).
#
#   benches/profile/run.sh BIN OUT [--tls] -- WORKLOAD-ARGS...
#   benches/profile/run.sh $CARGO_TARGET_DIR/release/timon /tmp/p-put -- --conns 10 --clients 100 --total 30000 put
#
# BIN is timon or etcd (both take the same flags); OUT gets the data dirs,
# logs, perf.data, the perf script and the bench output. The members listen
# on PORT_BASE (42000) and up. --tls: mutual TLS on client and peer ports
# with a throw-away CA made by openssl in OUT. perf samples at FREQ (149)
# Hz with DWARF call graphs; needs perf and root.
set -euo pipefail
BIN=$1 OUT=$2
shift 2
TLS=""
if [ "${1:-}" = "--tls" ]; then TLS=1; shift; fi
[ "${1:-}" = "--" ] && shift
HERE=$(cd "$(dirname "$0")" && pwd)
BENCH=${BENCH:-${CARGO_TARGET_DIR:-target}/release/timon-bench}
P=${PORT_BASE:-42000}
[ -x "$BENCH" ] || { echo "no timon-bench at $BENCH (set BENCH or CARGO_TARGET_DIR)" >&2; exit 1; }
rm -rf "$OUT" && mkdir -p "$OUT"
scheme=http flags=() client=()
if [ -n "$TLS" ]; then
  scheme=https
  (cd "$OUT" && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=ca 2>/dev/null
   printf "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n" > ext.cnf
   for n in server client; do
     openssl req -newkey rsa:2048 -nodes -keyout $n.key -out $n.csr -subj /CN=$n 2>/dev/null
     openssl x509 -req -in $n.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out $n.crt -days 2 -extfile ext.cnf 2>/dev/null
   done)
  flags=(--cert-file "$OUT/server.crt" --key-file "$OUT/server.key" --trusted-ca-file "$OUT/ca.crt" --client-cert-auth
         --peer-cert-file "$OUT/server.crt" --peer-key-file "$OUT/server.key" --peer-trusted-ca-file "$OUT/ca.crt" --peer-client-cert-auth)
  client=(--cacert "$OUT/ca.crt" --cert "$OUT/client.crt" --key "$OUT/client.key")
fi
cluster="m1=$scheme://127.0.0.1:$((P+1)),m2=$scheme://127.0.0.1:$((P+3)),m3=$scheme://127.0.0.1:$((P+5))"
pids=() endpoints=()
stop() { kill -KILL "${pids[@]}" 2>/dev/null || true; }
trap stop EXIT
for i in 1 2 3; do
  c=$((P+2*i-2))
  "$BIN" --name m$i --data-dir "$OUT/m$i" --listen-client-urls $scheme://127.0.0.1:$c --advertise-client-urls $scheme://127.0.0.1:$c \
    --listen-peer-urls $scheme://127.0.0.1:$((c+1)) --initial-advertise-peer-urls $scheme://127.0.0.1:$((c+1)) \
    --initial-cluster "$cluster" --initial-cluster-state new --snapshot-count 100000 --heartbeat-interval 100 \
    --election-timeout 1000 --quota-backend-bytes 8589934592 --log-level warn "${flags[@]}" > "$OUT/m$i.log" 2>&1 &
  pids+=($!) endpoints+=($scheme://127.0.0.1:$c)
done
eps=$(IFS=,; echo "${endpoints[*]}")
for _ in $(seq 100); do
  "$BENCH" --endpoints "$eps" "${client[@]}" --total 1 put > /dev/null 2>&1 && break
  sleep 0.1
done
cpu() { local t=0 s; for p in "${pids[@]}"; do s=($(cut -d' ' -f14,15 /proc/$p/stat)); t=$((t+s[0]+s[1])); done; echo $t; }
perf record -F "${FREQ:-149}" --call-graph dwarf,16384 -p "$(IFS=,; echo "${pids[*]}")" -o "$OUT/perf.data" > "$OUT/perf.log" 2>&1 &
perf=$!
sleep 0.5
before=$(cpu)
"$BENCH" --endpoints "$eps" "${client[@]}" "$@" > "$OUT/bench.out" 2>&1 || { cat "$OUT/bench.out" >&2; exit 1; }
after=$(cpu)
kill -INT $perf; wait $perf || true
grep -E "Requests/sec|50% in|99% in" "$OUT/bench.out" || true
echo "members' CPU: $(( (after-before)*10 )) ms"
perf script -i "$OUT/perf.data" -F comm,pid,tid,ip,sym,dso 2>/dev/null > "$OUT/perf.script"
python3 "$HERE/categories.py" < "$OUT/perf.script"
