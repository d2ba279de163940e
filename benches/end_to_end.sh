#!/usr/bin/env bash
# Requests/s and server CPU per request of the axum example under `wrk`,
# with the SDK disabled, recording only, and exporting to a loopback sink,
# interleaved for ROUNDS rounds (default 8); medians at the end.
#
#   bash benches/end_to_end.sh [ROUNDS]
#
# Needs `wrk` and `python3` (the sink: reads each OTLP request, answers 200).
# Every socket is on 127.0.0.1.
set -euo pipefail

rounds=${1:-8}
cd "$(dirname "$0")/.."
command -v wrk > /dev/null || { echo "end_to_end.sh: wrk is needed (apt install wrk)" >&2; exit 1; }

cargo build --release --example axum_service --features axum,reqwest,sqlx
bin=${CARGO_TARGET_DIR:-target}/release/examples/axum_service
port=3921
sink_port=4399

python3 - "$sink_port" <<'EOF' &
import http.server, socketserver, sys
class Sink(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
Server(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()
EOF
sink=$!
trap 'kill $sink 2> /dev/null' EXIT

results=$(mktemp)
run() {
    local label=$1
    shift
    env "$@" PORT=$port "$bin" > /dev/null 2>&1 &
    local server=$!
    for _ in $(seq 100); do
        curl -s -o /dev/null "http://127.0.0.1:$port/orders/1" && break
        sleep 0.1
    done
    wrk -t1 -c16 -d2s "http://127.0.0.1:$port/orders/1" > /dev/null
    local before after out
    before=$(awk '{print $14 + $15}' "/proc/$server/stat")
    out=$(wrk -t1 -c16 -d8s "http://127.0.0.1:$port/orders/1")
    after=$(awk '{print $14 + $15}' "/proc/$server/stat")
    kill -INT $server
    wait $server 2> /dev/null || true
    local requests rate
    requests=$(echo "$out" | awk '/requests in/ {print $1}')
    rate=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    echo "$label $rate $(( (after - before) * 1000000 / $(getconf CLK_TCK) / requests ))" | tee -a "$results"
}

for _ in $(seq "$rounds"); do
    run disabled OTEL_SDK_DISABLED=true
    run recording VAXILA_EXPORTER=none
    run exporting OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="http://127.0.0.1:$sink_port/v1/traces"
done

python3 - "$results" <<'EOF'
import collections, statistics, sys
rates, cpu = collections.defaultdict(list), collections.defaultdict(list)
for line in open(sys.argv[1]):
    label, rate, us = line.split()
    rates[label].append(float(rate))
    cpu[label].append(float(us))
base = statistics.median(rates["disabled"])
base_cpu = statistics.median(cpu["disabled"])
print("\n| setting | requests/s, median | vs. disabled | CPU µs per request, median |")
print("|---|---:|---:|---:|")
for label in rates:
    r, c = statistics.median(rates[label]), statistics.median(cpu[label])
    if label == "disabled":
        print(f"| {label} | {r:,.0f} | | {c:.0f} |")
    else:
        print(f"| {label} | {r:,.0f} | {(r / base - 1) * 100:+.0f} % | {c:.0f} ({(c / base_cpu - 1) * 100:+.0f} %) |")
EOF
rm -f "$results"
