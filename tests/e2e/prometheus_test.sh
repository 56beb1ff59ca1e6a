#!/usr/bin/env bash
# End-to-end test of picker's metrics with a real Prometheus: starts
# picker-server, makes picks with buf curl (three picks, two released, one
# lease held), checks the process_* series against what /proc says of the
# server, starts Debian's prometheus on 127.0.0.1 with a temp config scraping
# picker every second, and polls its query API until
# picker_picks_total{upstream="prom_upstream"} sums to 3,
# picker_active_requests{upstream="prom_upstream"} is 1 and the five
# process_* series are there.
#
# Needs PICKER_SERVER and PICKER_SOURCE_DIR (ctest passes both). Tools:
# prometheus, curl, node_modules/.bin/buf, /usr/bin/python3.

source "$(dirname "$0")/lib.sh"

require_server
require_buf
require_python
require_tool curl "Debian package curl"
require_tool prometheus "Debian package prometheus"

UP=prom_upstream
started_before=$(date +%s)
start_server
started_after=$(date +%s)

# ---- Traffic ------------------------------------------------------------------
bufc --data "{\"upstream\":{\"name\":\"$UP\"}}" "http://$ADMIN_ADDR/picker.v1.Admin/CreateUpstream" >/dev/null \
  || die "CreateUpstream $UP failed"
for a in 10.2.0.1:8080 10.2.0.2:8080; do
  bufc --data "{\"upstream\":\"$UP\",\"target\":{\"address\":\"$a\"}}" "http://$ADMIN_ADDR/picker.v1.Admin/PutTarget" >/dev/null \
    || die "PutTarget $a failed"
done
LEASES=()
for i in 1 2 3; do
  out=$(bufc --data "{\"upstream\":\"$UP\"}" "http://$DATA_ADDR/picker.v1.Picker/Pick") || die "Pick $i failed: $out"
  LEASES+=("$(json_get 'd["leaseId"]' <<<"$out")")
done
for lease in "${LEASES[@]:0:2}"; do
  out=$(bufc --data "{\"upstream\":\"$UP\",\"leaseId\":\"$lease\",\"outcome\":\"SUCCESS\",\"latency\":\"0.010s\"}" \
        "http://$DATA_ADDR/picker.v1.Picker/Release") || die "Release $lease failed: $out"
done
pass "3 picks on $UP, 2 released, lease ${LEASES[2]} held"

# picker's own exposition first: a failure here is picker's, not Prometheus'.
metrics=$(curl -sf --max-time 10 "http://$METRICS_ADDR/metrics") || die "GET http://$METRICS_ADDR/metrics failed"
grep -q "^picker_picks_total{.*upstream=\"$UP\"" <<<"$metrics" || fail "/metrics has no picker_picks_total for $UP"
grep -q "^picker_active_requests{.*upstream=\"$UP\"" <<<"$metrics" || fail "/metrics has no picker_active_requests for $UP"
grep -q '^# TYPE picker_picks_total counter' <<<"$metrics" || fail "/metrics: picker_picks_total is not declared a counter"
grep -q '^# TYPE picker_active_requests gauge' <<<"$metrics" || fail "/metrics: picker_active_requests is not declared a gauge"

# ---- The process_* series, against what the kernel says of the same process --
ls "/proc/$SERVER_PID/fd" >/dev/null 2>&1 || die "cannot read /proc/$SERVER_PID/fd"
process_check=$("$PYTHON" - "$SERVER_PID" "$started_before" "$started_after" "$metrics" <<'PY'
import os, re, sys
pid, before, after, text = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
want = {"process_cpu_seconds_total": "counter", "process_resident_memory_bytes": "gauge",
        "process_open_fds": "gauge", "process_max_fds": "gauge", "process_start_time_seconds": "gauge"}
problems, v = [], {}
for name, kind in want.items():
    if "# TYPE %s %s" % (name, kind) not in text:
        problems.append("%s is not declared a %s" % (name, kind))
    samples = re.findall(r"^%s (\S+)$" % name, text, re.M)
    if len(samples) != 1:
        problems.append("%s: %d samples, expected 1" % (name, len(samples)))
        continue
    v[name] = float(samples[0])
stat = open("/proc/%s/stat" % pid).read().rsplit(")", 1)[1].split()
cpu = (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
rss = int(re.search(r"VmRSS:\s+(\d+) kB", open("/proc/%s/status" % pid).read()).group(1)) * 1024
fds = len(os.listdir("/proc/%s/fd" % pid))
soft = re.search(r"Max open files\s+(\d+)", open("/proc/%s/limits" % pid).read()).group(1)
checks = [
    ("process_cpu_seconds_total", lambda x: 0 <= x <= cpu + 0.01 and x >= cpu - 1, "CPU %.2fs" % cpu),
    ("process_resident_memory_bytes", lambda x: rss / 2 <= x <= rss * 2, "VmRSS %d" % rss),
    ("process_open_fds", lambda x: abs(x - fds) <= 4, "%d entries in /proc/pid/fd" % fds),
    ("process_max_fds", lambda x: x == float(soft), "soft limit %s" % soft),
    ("process_start_time_seconds", lambda x: before - 2 <= x <= after + 2,
     "started between %d and %d" % (before, after)),
]
for name, ok, kernel in checks:
    if name in v and not ok(v[name]):
        problems.append("%s = %r, but the kernel says %s" % (name, v[name], kernel))
print("\n".join(problems) if problems else "ok " + " ".join("%s=%g" % kv for kv in sorted(v.items())))
PY
)
if [[ "$process_check" == ok* ]]; then pass "process series plausible: ${process_check#ok }"; else fail "process series: $process_check"; fi

# ---- Prometheus ---------------------------------------------------------------
PROM_PORT=$(free_port)
PROM="127.0.0.1:$PROM_PORT"
mkdir -p "$E2E_TMP/prometheus"
cat >"$E2E_TMP/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: picker
    scrape_interval: 1s
    scrape_timeout: 1s
    static_configs:
      - targets: ['$METRICS_ADDR']
EOF
prometheus --config.file="$E2E_TMP/prometheus.yml" --storage.tsdb.path="$E2E_TMP/prometheus" \
  --web.listen-address="$PROM" --log.level=warn >"$E2E_TMP/prometheus.log" 2>&1 &
PROM_PID=$!
E2E_PIDS+=("$PROM_PID")
echo "prometheus pid $PROM_PID on $PROM"

# prom_value QUERY: prints the sum of the instant vector's values, '' if empty.
prom_value() {
  curl -sf --max-time 5 -G "http://$PROM/api/v1/query" --data-urlencode "query=$1" 2>/dev/null | json_get '
(sum(float(r["value"][1]) for r in d["data"]["result"]) if d["status"] == "success" and d["data"]["result"] else "")' 2>/dev/null
}
# wait_for QUERY WANT: polls up to 20 s until QUERY's value is WANT.
wait_for() {
  local got="" i
  for i in $(seq 40); do
    kill -0 "$PROM_PID" 2>/dev/null || { cat "$E2E_TMP/prometheus.log" >&2; die "prometheus exited"; }
    got=$(prom_value "$1")
    [ "$got" = "$2" ] && { pass "prometheus: $1 = $got"; return 0; }
    sleep 0.5
  done
  fail "prometheus: $1 = '${got}' after 20 s, expected $2"
  echo "---- prometheus targets ----" >&2
  curl -s --max-time 5 "http://$PROM/api/v1/targets" >&2; echo >&2
  echo "---- prometheus log ----" >&2
  tail -n 20 "$E2E_TMP/prometheus.log" >&2
  return 1
}

wait_for 'up{job="picker"}' 1.0
wait_for "picker_picks_total{upstream=\"$UP\"}" 3.0
# Each series of the family carries the upstream, strategy and result labels.
labels=$(curl -sf --max-time 5 -G "http://$PROM/api/v1/query" --data-urlencode "query=picker_picks_total{upstream=\"$UP\"}" \
  | json_get 'sorted(set(k for r in d["data"]["result"] for k in r["metric"]))')
for l in upstream strategy result; do
  grep -q "\"$l\"" <<<"$labels" || fail "picker_picks_total has no '$l' label (labels: $labels)"
done
wait_for "picker_active_requests{upstream=\"$UP\"}" 1.0
wait_for "picker_build_info" 1.0
wait_for 'count({job="picker",__name__=~"process_.*"})' 5.0

# ---- The README's PromQL lines -----------------------------------------------
# Each query between the promql markers must be valid and return data here
# (the README's example upstream name is replaced by this test's).
queries=$(sed -n '/<!-- promql:begin -->/,/<!-- promql:end -->/p' "$PICKER_SOURCE_DIR/README.md" \
  | grep -v -e '^<!--' -e '^```' -e '^#' -e '^$' | sed "s/example_upstream/$UP/g")
[ "$(wc -l <<<"$queries")" -ge 5 ] || fail "README: fewer than 5 PromQL lines between the promql markers"
sleep 3  # rate() needs two samples in its window.
while IFS= read -r query; do
  answer=$(curl -sf --max-time 5 -G "http://$PROM/api/v1/query" --data-urlencode "query=$query")
  n=$(json_get 'len(d["data"]["result"]) if d["status"] == "success" else -1' <<<"$answer" 2>/dev/null)
  if [ -n "$n" ] && [ "$n" -gt 0 ]; then
    pass "README PromQL returns $n series: $query"
  else
    fail "README PromQL failed or returned nothing: $query -> $answer"
  fi
done <<<"$queries"

stop_server
finish
