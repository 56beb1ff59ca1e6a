#!/usr/bin/python3
"""deploy/grafana/picker.json against a real Prometheus scraping a real
picker-server (there is no Grafana in Debian).

The test loads the dashboard, checks its shape (panels, ids, grid, data
source, targets, template variables), substitutes its variables as Grafana
would ($instance and $upstream as "All", $__rate_interval), and runs every
panel's PromQL through Prometheus' query API: each must parse and return at
least one finite value, and the panels about errors, ejections, panic,
expired leases and refused admin writes must show them. The load makes them
happen: failed releases eject targets, targets set unhealthy put an upstream
in panic, an empty upstream refuses picks, leases are left to expire, bad
admin writes are refused, and an active check probes a closed port. The same
Prometheus loads deploy/prometheus/alerts.yml, whose rules must evaluate
without error, and every metric named by the alerts or the dashboard must be
one the server exports.

Environment: PICKER_SERVER, PICKER_SOURCE_DIR (ctest sets both). Tools:
prometheus, protoc, grpc_python_plugin, python3-grpcio and python3-yaml
(/usr/bin/python3).
"""

from __future__ import annotations

import glob
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

SOURCE = Path(os.environ.get("PICKER_SOURCE_DIR") or Path(__file__).resolve().parents[2])
DASHBOARD = SOURCE / "deploy" / "grafana" / "picker.json"
ALERTS = SOURCE / "deploy" / "prometheus" / "alerts.yml"
RATE_INTERVAL = "10s"  # Grafana's $__rate_interval for a 1 s scrape, with room
TIME_LIMIT = 75        # seconds: the whole test, well inside ctest's TIMEOUT
FAILURES: List[str] = []
yaml: Any = None  # imported in main(), where a missing module is reported
PROCS: List[subprocess.Popen] = []
TMP = Path(tempfile.mkdtemp(prefix="picker-grafana-"))


def fail(message: str) -> None:
    print("FAIL: " + message, file=sys.stderr)
    FAILURES.append(message)


def die(message: str) -> None:
    fail(message)
    sys.exit(1)


def ok(message: str) -> None:
    print("ok: " + message)


def cleanup() -> None:
    for proc in PROCS:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if FAILURES and (TMP / "server.log").exists():
        print("---- last lines of picker-server's log ----", file=sys.stderr)
        print("\n".join((TMP / "server.log").read_text(errors="replace").splitlines()[-20:]),
              file=sys.stderr)
    shutil.rmtree(TMP, ignore_errors=True)


def require_tools() -> Tuple[str, str]:
    server = os.environ.get("PICKER_SERVER", "")
    if not server or not os.access(server, os.X_OK):
        die("PICKER_SERVER must name the picker-server binary (ctest sets it); got %r" % server)
    for tool, package in (("prometheus", "prometheus"), ("protoc", "protobuf-compiler"),
                          ("grpc_python_plugin", "protobuf-compiler-grpc")):
        if shutil.which(tool) is None:
            die("%s not found on PATH: run scripts/install-deps.sh (Debian package %s)" % (tool, package))
    return server, shutil.which("prometheus") or ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- The dashboard ---------------------------------------------------------------

def all_panels(dashboard: Dict[str, Any]) -> List[Dict[str, Any]]:
    out = []
    for panel in dashboard.get("panels", []):
        out.append(panel)
        out.extend(panel.get("panels", []))  # collapsed rows hold their panels
    return out


def check_shape(dashboard: Dict[str, Any]) -> List[Tuple[str, str]]:
    """Checks the dashboard's structure; returns (panel title, expr) pairs."""
    for key in ("title", "uid", "panels", "templating", "schemaVersion"):
        if key not in dashboard:
            fail("dashboard: no %r" % key)
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    if variables.get("datasource", {}).get("type") != "datasource":
        fail("dashboard: no data source variable named 'datasource'")
    ids, exprs = set(), []
    for panel in all_panels(dashboard):
        title = panel.get("title") or "<untitled>"
        if panel.get("id") in ids:
            fail("panel %r: id %r used twice" % (title, panel.get("id")))
        ids.add(panel.get("id"))
        grid = panel.get("gridPos", {})
        if not all(isinstance(grid.get(k), int) for k in "hwxy") or grid["x"] + grid["w"] > 24:
            fail("panel %r: bad gridPos %r" % (title, grid))
        if panel.get("type") == "row":
            continue
        if panel.get("datasource", {}).get("uid") != "${datasource}":
            fail("panel %r: data source is not ${datasource}" % title)
        targets = panel.get("targets") or []
        if not targets:
            fail("panel %r: no queries" % title)
        if len({t.get("refId") for t in targets}) != len(targets):
            fail("panel %r: refIds not unique" % title)
        exprs.extend((title, t.get("expr", "")) for t in targets)
    return exprs


def substitute(expr: str, values: Dict[str, str]) -> str:
    """Grafana's variable syntaxes: $name, ${name}, ${name:format}, [[name]]."""
    def value(match: "re.Match[str]") -> str:
        name = next(g for g in match.groups() if g)
        if name not in values:
            fail("unknown variable $%s in: %s" % (name, expr))
            return match.group(0)
        return values[name]
    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)", value, expr)


def variable_values(dashboard: Dict[str, Any]) -> Dict[str, str]:
    values = {"__rate_interval": RATE_INTERVAL, "__interval": "5s", "__range": "1m",
              "__range_s": "60", "__interval_ms": "5000"}
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            # "All", as a dashboard opens; allValue is the regex Grafana sends.
            values[variable["name"]] = variable.get("allValue") or ".*"
        elif variable["type"] == "datasource":
            values[variable["name"]] = "prometheus"
    return values


# ---- picker-server and its load ------------------------------------------------

def make_stubs() -> Any:
    """Generates the picker.v1 stubs into the temp dir and imports them."""
    out = TMP / "stubs"
    out.mkdir()
    protos = sorted(os.path.relpath(p, SOURCE / "protos")
                    for p in glob.glob(str(SOURCE / "protos" / "picker" / "v1" / "*.proto")))
    subprocess.run(["protoc", "--python_out=%s" % out, "--grpc_python_out=%s" % out,
                    "--plugin=protoc-gen-grpc_python=%s" % shutil.which("grpc_python_plugin"),
                    "-I", str(SOURCE / "protos"), *protos], check=True, timeout=60)
    sys.path.insert(0, str(out))
    import picker.v1 as v1  # noqa: E402
    from picker.v1 import admin_pb2, admin_pb2_grpc, picker_pb2, picker_pb2_grpc  # noqa: F401,E402
    return v1


def start_server(binary: str) -> Tuple[str, str, str]:
    log = open(TMP / "server.log", "w")
    PROCS.append(subprocess.Popen(
        [binary, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--metrics-listen",
         "127.0.0.1:0", "--data-dir", str(TMP / "data"), "--metrics-per-target"],
        stdout=subprocess.DEVNULL, stderr=log))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        found = re.search(r"listening data=(\S+) admin=(\S+) metrics=(\S+)",
                          (TMP / "server.log").read_text(errors="replace"))
        if found:
            return found.group(1), found.group(2), found.group(3)
        if PROCS[-1].poll() is not None:
            die("picker-server exited with %d before listening" % PROCS[-1].returncode)
        time.sleep(0.05)
    die("picker-server printed no 'listening data=...' line within 20 s")
    raise AssertionError


def millis(n: int) -> Dict[str, int]:
    return {"seconds": n // 1000, "nanos": (n % 1000) * 1_000_000}


def set_up_upstreams(v1: Any, admin: Any) -> None:
    """Upstreams whose traffic shows every panel something."""
    a = v1.admin_pb2
    passive = a.HealthChecks.Passive(consecutive_failures=2, base_ejection_time=millis(200),
                                     max_ejection_time=millis(1000))
    closed = "127.0.0.1:%d" % free_port()  # nothing listens there: every probe fails
    active = a.HealthChecks.Active(type=a.HealthChecks.Active.TCP, interval=millis(200),
                                   timeout=millis(100), unhealthy_failures=1, healthy_successes=1)
    upstreams = [
        (a.Upstream(name="dash_main", load_balancer=a.LoadBalancer(least_request=a.LeastRequest())),
         ["10.7.0.1:80", "10.7.0.2:80", "10.7.0.3:80"]),
        (a.Upstream(name="dash_eject", health_checks=a.HealthChecks(passive=passive)),
         ["10.7.1.1:80", "10.7.1.2:80", "10.7.1.3:80"]),
        (a.Upstream(name="dash_panic"), ["10.7.2.1:80", "10.7.2.2:80"]),
        (a.Upstream(name="dash_empty"), []),
        (a.Upstream(name="dash_leaky", lease_ttl=millis(300)), ["10.7.3.1:80"]),
        (a.Upstream(name="dash_active", health_checks=a.HealthChecks(active=active)), [closed]),
    ]
    for upstream, targets in upstreams:
        admin.CreateUpstream(a.CreateUpstreamRequest(upstream=upstream), timeout=10)
        for address in targets:
            admin.PutTarget(a.PutTargetRequest(upstream=upstream.name, target=a.Target(address=address)),
                            timeout=10)
    for address in ("10.7.2.1:80", "10.7.2.2:80"):  # both unhealthy: panic
        admin.SetTargetHealth(a.SetTargetHealthRequest(
            upstream="dash_panic", address=address, override=a.SetTargetHealthRequest.UNHEALTHY), timeout=10)


class Load(threading.Thread):
    """Picks, releases (successes with latency, failures), lost leases,
    refused picks and admin writes, good and bad, until stopped."""

    def __init__(self, v1: Any, picker: Any, admin: Any) -> None:
        super().__init__(daemon=True)
        self.v1, self.picker, self.admin = v1, picker, admin
        self.stop = threading.Event()
        self.rounds = 0
        self.error: Optional[str] = None

    def pick_release(self, upstream: str, outcome: int, latency_ms: int) -> None:
        p = self.v1.picker_pb2
        lease = self.picker.Pick(p.PickRequest(upstream=upstream), timeout=10)
        self.picker.Release(p.ReleaseRequest(upstream=upstream, lease_id=lease.lease_id, outcome=outcome,
                                             latency=millis(latency_ms)), timeout=10)

    def refused(self, call: Callable[[], Any]) -> None:
        import grpc
        try:
            call()
        except grpc.RpcError:
            return
        raise AssertionError("a call meant to fail succeeded")

    def one_round(self) -> None:
        p, a = self.v1.picker_pb2, self.v1.admin_pb2
        self.pick_release("dash_main", p.ReleaseRequest.SUCCESS, 1 + self.rounds % 50)
        self.pick_release("dash_eject", p.ReleaseRequest.FAILURE, 5)
        self.pick_release("dash_panic", p.ReleaseRequest.SUCCESS, 2)
        self.refused(lambda: self.picker.Pick(p.PickRequest(upstream="dash_empty"), timeout=10))
        self.refused(lambda: self.picker.Pick(p.PickRequest(upstream="dash_nope"), timeout=10))
        if self.rounds % 10 == 0:
            self.picker.Pick(p.PickRequest(upstream="dash_leaky"), timeout=10)  # never released
            self.admin.PutTarget(a.PutTargetRequest(upstream="dash_main", target=a.Target(
                address="10.7.0.1:80", weight=50 + self.rounds % 100)), timeout=10)
            self.refused(lambda: self.admin.PutTarget(a.PutTargetRequest(
                upstream="dash_main", target=a.Target(address="not an address")), timeout=10))
            self.refused(lambda: self.admin.CreateUpstream(a.CreateUpstreamRequest(
                upstream=a.Upstream(name="dash_main")), timeout=10))

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                self.one_round()
                self.rounds += 1
                time.sleep(0.01)
        except Exception as e:  # reported by the main thread
            self.error = "%s: %s" % (type(e).__name__, e)


# ---- Prometheus -------------------------------------------------------------------

class Prometheus:
    def __init__(self, binary: str, metrics_address: str) -> None:
        self.address = "127.0.0.1:%d" % free_port()
        config = TMP / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "rule_files: ['%s']\n"
            "scrape_configs:\n"
            "  - job_name: picker\n"
            "    scrape_timeout: 1s\n"
            "    static_configs: [{targets: ['%s']}]\n" % (ALERTS, metrics_address))
        log = open(TMP / "prometheus.log", "w")
        PROCS.append(subprocess.Popen(
            [binary, "--config.file=%s" % config, "--storage.tsdb.path=%s" % (TMP / "tsdb"),
             "--web.listen-address=%s" % self.address, "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT))
        self.proc = PROCS[-1]

    def get(self, path: str, **params: str) -> Dict[str, Any]:
        url = "http://%s%s?%s" % (self.address, path, urllib.parse.urlencode(params))
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:  # a bad query answers 400 with a JSON body
            return json.load(e)
        except (OSError, ValueError) as e:
            if self.proc.poll() is not None:
                die("prometheus exited: %s" % (TMP / "prometheus.log").read_text()[-2000:])
            return {"status": "unreachable", "error": str(e)}

    def values(self, query: str) -> Tuple[Optional[str], List[float]]:
        """(error, values of the instant vector or scalar)."""
        answer = self.get("/api/v1/query", query=query)
        if answer.get("status") != "success":
            return answer.get("error", answer.get("status")), []
        data = answer["data"]
        if data["resultType"] == "scalar":
            return None, [float(data["result"][1])]
        return None, [float(r["value"][1]) for r in data["result"]]


def run_queries(prom: Prometheus, queries: List[Tuple[str, str, str]], positive: Dict[str, str],
                deadline: float) -> None:
    """Polls each query until it returns a finite value (above 0 for the
    panels in `positive`), or fails it at the deadline; a query Prometheus
    cannot parse fails at once."""
    pending = list(queries)
    last: Dict[str, Any] = {}
    while pending and time.monotonic() < deadline:
        for item in list(pending):
            title, expr, query = item
            error, values = prom.values(query)
            if error and "parse" in str(error):
                fail("panel %r: Prometheus cannot parse %s: %s" % (title, query, error))
                pending.remove(item)
                continue
            finite = [v for v in values if math.isfinite(v)]
            last[query] = error or values
            if finite and (title not in positive or max(finite) > 0):
                ok("panel %r: %d series, e.g. %g: %s" % (title, len(values), max(finite), expr))
                pending.remove(item)
        time.sleep(1)
    for title, expr, query in pending:
        want = " above 0 (%s)" % positive[title] if title in positive else ""
        fail("panel %r: no finite value%s from %s (last answer: %r)" % (title, want, query, last.get(query)))


def metric_names(text: str) -> set:
    return set(re.findall(r"\b((?:picker|process)_[a-z_]+)\b", text))


def check_names_exported(prom: Prometheus, dashboard_exprs: List[str]) -> None:
    """Every metric an alert or a panel queries is one the server exports."""
    with open(ALERTS) as f:
        alert_exprs = [r["expr"] for g in yaml.safe_load(f)["groups"] for r in g["rules"]]
    exported = set(prom.get("/api/v1/label/__name__/values").get("data", []))
    for source, exprs in (("alerts.yml", alert_exprs), ("picker.json", dashboard_exprs)):
        names = metric_names("\n".join(exprs))
        missing = sorted(names - exported)
        if missing:
            fail("%s names metrics picker-server does not export: %s" % (source, missing))
        else:
            ok("%s: all %d metric names are exported" % (source, len(names)))


def check_rules_evaluate(prom: Prometheus) -> None:
    rules = [r for g in prom.get("/api/v1/rules").get("data", {}).get("groups", []) for r in g["rules"]]
    if len(rules) != 6:
        fail("Prometheus loaded %d rules from alerts.yml, expected 6" % len(rules))
    for rule in rules:
        if rule.get("health") != "ok" or rule.get("lastError"):
            fail("rule %s does not evaluate: %s %s" % (rule.get("name"), rule.get("health"), rule.get("lastError")))
    firing = sorted({a["labels"]["alertname"] for r in rules for a in r.get("alerts", [])})
    ok("alerts.yml: %d rules evaluate in Prometheus (pending or firing now: %s)" % (len(rules), firing))


# ---- main -------------------------------------------------------------------------

POSITIVE = {
    "Pick errors by upstream": "dash_empty refuses every pick",
    "Picks naming no upstream": "picks on dash_nope",
    "Passive ejections": "dash_eject's failed releases",
    "Upstreams in panic": "dash_panic's targets are set unhealthy",
    "Expired leases by upstream": "dash_leaky's leases are never released",
    "Refused admin writes": "bad PutTarget and duplicate CreateUpstream",
    "Active health checks by result": "dash_active probes a closed port",
}


def main() -> None:
    signal.signal(signal.SIGALRM, lambda *_: die("time limit of %d s reached" % TIME_LIMIT))
    signal.alarm(TIME_LIMIT)
    server, prometheus = require_tools()
    try:
        import grpc
    except ImportError as e:
        die("cannot import grpc (%s): run with /usr/bin/python3 (Debian python3-grpcio)" % e)
    global yaml
    try:
        import yaml
    except ImportError:
        die("python3 cannot import yaml: run scripts/install-deps.sh (Debian package python3-yaml)")
    dashboard = json.loads(DASHBOARD.read_text())
    values = variable_values(dashboard)
    queries = [(title, expr, substitute(expr, values)) for title, expr in check_shape(dashboard)]
    ok("dashboard: %d panels, %d queries" % (len(all_panels(dashboard)), len(queries)))
    missing = set(POSITIVE) - {t for t, _, _ in queries}
    if missing:
        fail("dashboard: no panel titled %s" % sorted(missing))

    v1 = make_stubs()
    data, admin_address, metrics = start_server(server)
    picker = v1.picker_pb2_grpc.PickerStub(grpc.insecure_channel(data))
    admin = v1.admin_pb2_grpc.AdminStub(grpc.insecure_channel(admin_address))
    set_up_upstreams(v1, admin)
    load = Load(v1, picker, admin)
    load.start()
    prom = Prometheus(prometheus, metrics)
    run_queries(prom, queries, POSITIVE, time.monotonic() + 45)
    check_names_exported(prom, [expr for _, expr, _ in queries])
    check_rules_evaluate(prom)
    load.stop.set()
    load.join(10)
    if load.error:
        fail("the load stopped: %s" % load.error)
    ok("load: %d rounds" % load.rounds)
    PROCS[0].send_signal(signal.SIGTERM)
    if PROCS[0].wait(timeout=15) != 0:
        fail("picker-server did not exit 0 on SIGTERM")


if __name__ == "__main__":
    try:
        main()
    finally:
        cleanup()
    if FAILURES:
        print("grafana_dashboard_test: %d check(s) failed" % len(FAILURES), file=sys.stderr)
        sys.exit(1)
    print("grafana_dashboard_test: all checks passed")
