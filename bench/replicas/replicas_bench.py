#!/usr/bin/python3
"""Several picker-server replicas sharing etcd: forwarding, propagation,
failover, three replicas against one, memory.

Starts a 3-member etcd cluster (Debian's etcd 3.4, data on /dev/shm) and
three picker-server replicas on free 127.0.0.1 ports, then measures:

  forward     picker-bench against an upstream's owner (direct) and against a
              replica that does not own it (each pick forwarded to the owner),
              runs interleaved, medians and their ratio
  propagate   an admin write (PutTarget weight change) on one replica until
              each other replica serves it (ListTargets on their admin API)
  failover    kill -9 of an upstream's owner until a surviving replica's Pick
              is served by the new owner, for --member-ttl 5s and 2s, and
              with an etcd leader change during it (move-leader; kill -9)
  spread      three picker-bench clients (one upstream each) against one
              replica alone, then spread over three replicas (each client at
              its upstream's owner, then each at a non-owner)
  memory      each replica's VmRSS (and etcd's) before and after 10,000
              upstreams of 100 targets created through the admin API

and prints a markdown table per part. Every process it starts is stopped at
the end, on Ctrl-C, or when --time-limit runs out.

  /usr/bin/python3 bench/replicas/replicas_bench.py --bin /tmp/bench-bin
"""

import argparse
import atexit
import concurrent.futures
import glob
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import grpc

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--bin", default="build", help="directory of picker-server and picker-bench")
parser.add_argument("--source", default=os.path.join(os.path.dirname(__file__), "..", ".."))
parser.add_argument("--parts", default="forward,propagate,spread,failover,memory")
parser.add_argument("--duration", type=float, default=5, help="picker-bench seconds per run")
parser.add_argument("--repeat", type=int, default=3, help="picker-bench runs per side (forward)")
parser.add_argument("--writes", type=int, default=200, help="writes timed (propagate)")
parser.add_argument("--trials", type=int, default=5, help="kills per member TTL (failover)")
parser.add_argument("--upstreams", type=int, default=10000, help="upstreams created (memory)")
parser.add_argument("--targets", type=int, default=100, help="targets of each (memory)")
parser.add_argument("--time-limit", type=float, default=1800, help="seconds before giving up")
args = parser.parse_args()

SERVER = os.path.join(args.bin, "picker-server")
BENCH = os.path.join(args.bin, "picker-bench")
TMP = tempfile.mkdtemp(prefix="picker-replicas.")
SHM = tempfile.mkdtemp(prefix="picker-replicas-etcd.", dir="/dev/shm")
PROCS = []  # every Popen we started, stopped at exit


def cleanup():
    for p in PROCS:
        if p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGCONT)
                p.kill()
                p.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                pass
    shutil.rmtree(SHM, ignore_errors=True)
    shutil.rmtree(TMP, ignore_errors=True)


atexit.register(cleanup)
for sig in (signal.SIGINT, signal.SIGTERM):
    signal.signal(sig, lambda *_: sys.exit("interrupted"))


def watchdog():
    sys.stderr.write("replicas_bench: still running after %.0f s, giving up\n" % args.time_limit)
    cleanup()
    os._exit(3)


_dog = threading.Timer(args.time_limit, watchdog)
_dog.daemon = True
_dog.start()

stubs = os.path.join(TMP, "stubs")
os.makedirs(stubs)
_protos = sorted(os.path.relpath(p, os.path.join(args.source, "protos"))
                 for p in glob.glob(os.path.join(args.source, "protos", "picker", "v1", "*.proto")))
subprocess.run(["protoc", "--python_out=" + stubs, "--grpc_python_out=" + stubs,
                "--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin",
                "-I", os.path.join(args.source, "protos")] + _protos, check=True)
sys.path.insert(0, stubs)
from picker.v1 import admin_pb2, admin_pb2_grpc, picker_pb2, picker_pb2_grpc  # noqa: E402


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port  # free a moment ago; the child binds it next


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def rss_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        m = re.search(r"VmRSS:\s+(\d+) kB", f.read())
    return int(m.group(1)) / 1024.0


def scrape_sum(replica, metric):
    """The sum of a metric's series on a replica's /metrics."""
    import urllib.request
    body = urllib.request.urlopen("http://%s/metrics" % replica.metrics, timeout=5).read().decode()
    return sum(float(l.rsplit(" ", 1)[1]) for l in body.splitlines()
               if l.startswith(metric + "{") or l.startswith(metric + " "))


def pct(values, q):
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))]


def lease_boot(lease_id):
    return lease_id >> 40  # core/lease_id.h: boot is the top 24 bits


# --- etcd ------------------------------------------------------------------

class Etcd:
    """A 3-member etcd cluster on loopback (as tests/replicas/etcd_process.cc,
    with etcd's default heartbeat and election timeout)."""

    def __init__(self, members=3):
        self.members = []
        for i in range(members):
            self.members.append({"name": "e%d" % i, "client": free_port(), "peer": free_port(),
                                 "dir": os.path.join(SHM, "e%d" % i), "proc": None})
        self.initial = ",".join("%s=http://127.0.0.1:%d" % (m["name"], m["peer"])
                                for m in self.members)
        for i in range(members):
            self.start(i, "new")
        self.wait_healthy()

    def start(self, i, state):
        m = self.members[i]
        client = "http://127.0.0.1:%d" % m["client"]
        peer = "http://127.0.0.1:%d" % m["peer"]
        log = open(os.path.join(TMP, m["name"] + ".log"), "a")
        m["proc"] = subprocess.Popen(
            ["/usr/bin/etcd", "--name", m["name"], "--data-dir", m["dir"],
             "--listen-client-urls", client, "--advertise-client-urls", client,
             "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
             "--initial-cluster", self.initial, "--initial-cluster-state", state],
            stdout=log, stderr=log)
        PROCS.append(m["proc"])

    def endpoints(self):
        return ",".join("http://127.0.0.1:%d" % m["client"] for m in self.members)

    def ctl(self, *argv, endpoints=None):
        out = subprocess.run(["etcdctl", "--endpoints", endpoints or self.endpoints(),
                              "--command-timeout=5s"] + list(argv),
                             capture_output=True, text=True, timeout=15,
                             env=dict(os.environ, ETCDCTL_API="3"))
        return out.stdout

    def wait_healthy(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.leader() is not None:
                return
            time.sleep(0.2)
        raise RuntimeError("etcd has no leader after %d s" % timeout)

    def status(self):
        live = ",".join("http://127.0.0.1:%d" % m["client"] for m in self.members
                        if m["proc"] and m["proc"].poll() is None)
        try:
            return json.loads(self.ctl("endpoint", "status", "-w", "json", endpoints=live) or "[]")
        except (json.JSONDecodeError, subprocess.TimeoutExpired):
            return []

    def leader(self):
        """(index of the leader member, its member id, ids of the others) or None."""
        st = self.status()
        for i, m in enumerate(self.members):
            for s in st:
                if s["Endpoint"].endswith(":%d" % m["client"]) and \
                        s["Status"]["header"]["member_id"] == s["Status"]["leader"]:
                    others = [x["Status"]["header"]["member_id"] for x in st if x is not s]
                    return i, s["Status"]["leader"], others
        return None

    def rss(self):
        return sum(rss_mib(m["proc"].pid) for m in self.members if m["proc"].poll() is None)


# --- replicas ----------------------------------------------------------------

class Replica:
    def __init__(self, index, etcd, ttl):
        self.id = "r%d" % index
        self.etcd, self.ttl = etcd, ttl
        self.data = "127.0.0.1:%d" % free_port()
        self.admin = "127.0.0.1:%d" % free_port()
        self.metrics = "127.0.0.1:%d" % free_port()
        self.proc = None
        self.start()

    def start(self):
        self.log_path = os.path.join(TMP, "%s.%d.log" % (self.id, time.time_ns()))
        log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [SERVER, "--etcd-endpoints", self.etcd.endpoints(), "--replica-id", self.id,
             "--advertise-address", self.data, "--listen", self.data,
             "--admin-listen", self.admin, "--metrics-listen", self.metrics,
             "--member-ttl", "%ds" % self.ttl, "--log-level", "warn",
             "--data-dir", os.path.join(TMP, self.id + "-unused")],
            stdout=subprocess.DEVNULL, stderr=log)
        PROCS.append(self.proc)
        self.picker = picker_pb2_grpc.PickerStub(grpc.insecure_channel(self.data))
        self.admin_stub = admin_pb2_grpc.AdminStub(grpc.insecure_channel(self.admin))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited: %s" % (self.id, open(self.log_path).read()[-2000:]))
            try:
                self.picker.ListMembers(picker_pb2.ListMembersRequest(), timeout=1)
                return
            except grpc.RpcError:
                time.sleep(0.1)
        raise RuntimeError("%s did not start" % self.id)

    def members(self):
        r = self.picker.ListMembers(picker_pb2.ListMembersRequest(), timeout=2)
        return sorted(m.id for m in r.members)

    def kill9(self):
        self.proc.kill()
        self.proc.wait()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def rss(self):
        return rss_mib(self.proc.pid)


class Cluster:
    def __init__(self, etcd, n=3, ttl=5):
        self.etcd = etcd
        self.replicas = [Replica(i, etcd, ttl) for i in range(n)]
        self.wait_members()

    def live(self):
        return [r for r in self.replicas if r.proc.poll() is None]

    def wait_members(self, timeout=30):
        want = sorted(r.id for r in self.live())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if all(r.members() == want for r in self.live()):
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.1)
        raise RuntimeError("replicas do not agree on members %s" % want)

    def boots(self):
        """replica id -> its boot, from the members' keys in etcd."""
        out = self.etcd.ctl("get", "--prefix", "/picker/members/", "--print-value-only")
        result = {}
        for line in out.splitlines():
            if line.startswith("{"):
                m = json.loads(line)
                result[m["id"]] = int(m["boot"])
        return result

    def owner(self, upstream, via=None):
        """The replica that serves `upstream`'s picks: the boot in the lease id
        of a pick (forwarded to the owner when `via` is not it)."""
        via = via or self.live()[0]
        p = via.picker.Pick(picker_pb2.PickRequest(upstream=upstream), timeout=5)
        via.picker.Release(picker_pb2.ReleaseRequest(upstream=upstream, lease_id=p.lease_id),
                           timeout=5)
        by_boot = {b: rid for rid, b in self.boots().items()}
        rid = by_boot[lease_boot(p.lease_id)]
        return next(r for r in self.replicas if r.id == rid)

    def stop(self):
        for r in self.replicas:
            r.stop()


def create_upstream(admin, name, targets, strategy="round_robin", base=0):
    up = admin_pb2.Upstream(name=name)
    getattr(up.load_balancer, strategy).SetInParent()
    admin.CreateUpstream(admin_pb2.CreateUpstreamRequest(upstream=up), timeout=10)
    req = admin_pb2.ReplaceTargetsRequest(upstream=name)
    for i in range(base, base + targets):
        req.targets.add(address="10.%d.%d.%d:80" % ((i >> 16) & 255, (i >> 8) & 255, i & 255),
                        weight=100)
    admin.ReplaceTargets(req, timeout=30)


def wait_served(cluster, name, timeout=10):
    deadline = time.monotonic() + timeout
    for r in cluster.live():
        while True:
            try:
                r.admin_stub.GetUpstream(admin_pb2.GetUpstreamRequest(name=name), timeout=2)
                break
            except grpc.RpcError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)


def upstreams_owned_by_each(cluster, prefix, targets):
    """One upstream owned by each replica: prefix-0, prefix-1, ... until each
    replica owns one. Returns {replica id: upstream name}."""
    found, i = {}, 0
    while len(found) < len(cluster.replicas) and i < 64:
        name = "%s-%d" % (prefix, i)
        create_upstream(cluster.replicas[0].admin_stub, name, targets)
        wait_served(cluster, name)
        owner = cluster.owner(name)
        found.setdefault(owner.id, name)
        i += 1
    return found


# --- picker-bench ------------------------------------------------------------

FIG = re.compile(r"QPS=([\d.]+) p50=([\d.]+)ms p90=[\d.]+ms p99=([\d.]+)ms p99\.9=[\d.]+ms "
                 r"errors=(\d+)(?: \| pick p50=([\d.]+)ms p99=([\d.]+)ms)?")


def bench_cmd(replica, upstream, mode, duration, concurrency=8):
    return [BENCH, "--target", replica.data, "--admin", replica.admin, "--upstream", upstream,
            "--setup=false", "--modes", mode, "--concurrency", str(concurrency),
            "--duration", str(duration), "--warmup", "1"]


def parse_bench(out):
    lines = [l for l in out.splitlines() if re.match(r"^(unary|stream) c=\d+: ", l)]
    if not lines:
        raise RuntimeError("picker-bench printed no summary:\n" + out[-2000:])
    m = FIG.search(lines[-1])
    f = {"qps": float(m.group(1)), "p50": float(m.group(2)), "p99": float(m.group(3)),
         "errors": int(m.group(4))}
    if m.group(5):
        f["pick_p50"], f["pick_p99"] = float(m.group(5)), float(m.group(6))
    e = re.search(r"first error: (.*)", lines[-1])
    f["first_error"] = e.group(1) if e else ""
    return f


def run_bench(cmds):
    """Runs picker-bench commands at once; their figures, in order."""
    procs = []
    for c in cmds:
        p = subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        PROCS.append(p)
        procs.append(p)
    outs = [p.communicate(timeout=args.duration + 60)[0] for p in procs]
    return [parse_bench(o) for o in outs]


def median_figs(runs):
    return {k: statistics.median(r[k] for r in runs) for k in runs[0] if k != "first_error"}


# --- parts -------------------------------------------------------------------

def part_forward(cluster):
    ups = upstreams_owned_by_each(cluster, "fwd", 100)
    owner_id, name = sorted(ups.items())[0]
    owner = next(r for r in cluster.replicas if r.id == owner_id)
    other = next(r for r in cluster.replicas if r.id != owner_id)
    print("\n### Forwarded against direct picks (upstream %s of 100 targets, round robin, "
          "owner %s, forwarded through %s; c=8, %d s runs, medians of %d interleaved; "
          "loadavg %s)\n" % (name, owner.id, other.id, args.duration, args.repeat, loadavg()))
    print("| mode | path | QPS | p50 ms | p99 ms | pick p50 ms | pick p99 ms | errors |")
    print("|---|---|---|---|---|---|---|---|")
    forwarded = {}
    for mode in ("unary", "stream"):
        direct, fwd = [], []
        before = scrape_sum(other, "picker_forwarded_total")
        for _ in range(args.repeat):
            direct += run_bench([bench_cmd(owner, name, mode, args.duration)])
            fwd += run_bench([bench_cmd(other, name, mode, args.duration)])
        forwarded[mode] = scrape_sum(other, "picker_forwarded_total") - before
        d, f = median_figs(direct), median_figs(fwd)
        for label, x in (("direct (owner)", d), ("forwarded (non-owner)", f)):
            print("| %s | %s | %.0f | %.3f | %.3f | %s | %s | %d |" % (
                mode, label, x["qps"], x["p50"], x["p99"],
                "%.3f" % x["pick_p50"] if "pick_p50" in x else "",
                "%.3f" % x["pick_p99"] if "pick_p99" in x else "", sum(
                    r["errors"] for r in (direct if x is d else fwd))))
        if f["qps"] > 0:
            print("| %s | forwarded / direct | x%.2f | x%.2f | x%.2f | %s | %s | |" % (
                mode, f["qps"] / d["qps"], f["p50"] / d["p50"], f["p99"] / d["p99"],
                "x%.2f" % (f["pick_p50"] / d["pick_p50"]) if "pick_p50" in f else "",
                "x%.2f" % (f["pick_p99"] / d["pick_p99"]) if "pick_p99" in f else ""))
        for r in direct + fwd:
            if r["first_error"]:
                print("| %s | first error (%s) | %s | | | | | |" % (
                    mode, "direct" if r in direct else "forwarded", r["first_error"]))
                break
        print("  runs %s QPS direct %s forwarded %s" % (
            mode, [round(r["qps"]) for r in direct], [round(r["qps"]) for r in fwd]),
            file=sys.stderr)
    print("\npicker_forwarded_total on %s grew by %s during the runs; loadavg after: %s" % (
        other.id, ", ".join("%.0f (%s)" % (v, k) for k, v in forwarded.items()), loadavg()))


def part_propagate(cluster):
    name = "prop"
    create_upstream(cluster.replicas[0].admin_stub, name, 1)
    wait_served(cluster, name)
    address = "10.0.0.0:80"
    ack, seen_after_ack, seen_after_start = [], [], []
    missed = 0
    for k in range(args.writes):
        writer = cluster.replicas[k % len(cluster.replicas)]
        others = [r for r in cluster.replicas if r is not writer]
        weight = 1 + k % 1000 + (1000 if k % 2 else 0)
        seen = {}

        def poll(r, weight=weight, seen=seen):
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                t = r.admin_stub.ListTargets(admin_pb2.ListTargetsRequest(upstream=name),
                                             timeout=2).targets
                if t and t[0].weight == weight:
                    seen[r.id] = time.monotonic()
                    return

        threads = [threading.Thread(target=poll, args=(r,)) for r in others]
        for t in threads:
            t.start()
        t0 = time.monotonic()
        writer.admin_stub.PutTarget(admin_pb2.PutTargetRequest(
            upstream=name, target=admin_pb2.Target(address=address, weight=weight)), timeout=10)
        t1 = time.monotonic()
        for t in threads:
            t.join()
        ack.append(t1 - t0)
        for r in others:
            if r.id not in seen:
                missed += 1
                continue
            seen_after_start.append(seen[r.id] - t0)
            seen_after_ack.append(seen[r.id] - t1)
    ms = lambda v: "%.2f" % (v * 1000)  # noqa: E731
    print("\n### Write propagation (%d PutTarget writes, rotating over %d replicas; the "
          "others polled with ListTargets, %d sightings; loadavg %s)\n" % (
              args.writes, len(cluster.replicas), len(seen_after_start), loadavg()))
    print("| interval | p50 ms | p99 ms | max ms |")
    print("|---|---|---|---|")
    print("| write sent -> acknowledged by the writing replica | %s | %s | %s |" % (
        ms(pct(ack, .5)), ms(pct(ack, .99)), ms(max(ack))))
    print("| write sent -> served by another replica | %s | %s | %s |" % (
        ms(pct(seen_after_start, .5)), ms(pct(seen_after_start, .99)), ms(max(seen_after_start))))
    print("| acknowledged -> served by another replica | %s | %s | %s |" % (
        ms(pct(seen_after_ack, .5)), ms(pct(seen_after_ack, .99)), ms(max(seen_after_ack))))
    early = sum(1 for v in seen_after_ack if v <= 0)
    print("\nSeen before the writer's acknowledgement reached the client: %d of %d; "
          "never seen within 10 s: %d." % (early, len(seen_after_ack), missed))


def time_failover(cluster, name, victim, via, disrupt=None):
    """kill -9 `victim` (the owner of `name`); seconds until a Pick through
    `via` is served by another replica, and the errors seen meanwhile."""
    dead_boot = cluster.boots()[victim.id]
    errors = {}
    t0 = time.monotonic()
    victim.kill9()
    disrupted = False
    while time.monotonic() - t0 < 60:
        if disrupt and not disrupted and time.monotonic() - t0 >= 1.0:
            disrupt()
            disrupted = True
        try:
            p = via.picker.Pick(picker_pb2.PickRequest(upstream=name), timeout=0.5)
            if lease_boot(p.lease_id) != dead_boot:
                elapsed = time.monotonic() - t0
                via.picker.Release(picker_pb2.ReleaseRequest(upstream=name, lease_id=p.lease_id),
                                   timeout=5)
                return elapsed, errors
            errors["served by the dead owner's boot"] = errors.get(
                "served by the dead owner's boot", 0) + 1
        except grpc.RpcError as e:
            errors[e.code().name] = errors.get(e.code().name, 0) + 1
        time.sleep(0.01)
    return None, errors


def failover_trials(etcd, ttl, trials, disrupts=()):
    cluster = Cluster(etcd, ttl=ttl)
    rows = []
    try:
        name = "fo-%d" % ttl
        create_upstream(cluster.replicas[0].admin_stub, name, 10)
        wait_served(cluster, name)
        plan = [("kill -9 owner", None)] * trials + list(disrupts)
        for label, disrupt in plan:
            victim = cluster.owner(name)
            via = next(r for r in cluster.replicas if r is not victim)
            la = loadavg()
            elapsed, errors = time_failover(cluster, name, victim, via, disrupt and disrupt())
            rows.append((ttl, label, elapsed, errors, la))
            print("  ttl %ds %s: %s %s" % (ttl, label, elapsed, errors), file=sys.stderr)
            etcd.wait_healthy()
            victim.start()
            cluster.wait_members()
            time.sleep(0.5)
    finally:
        cluster.stop()
    return rows


def part_failover(etcd):
    def move_leader():
        def go():
            leader = etcd.leader()
            if leader:
                i, _, others = leader
                etcd.ctl("move-leader", "%x" % others[0],
                         endpoints="http://127.0.0.1:%d" % etcd.members[i]["client"])
        return go

    killed = []

    def kill_leader():
        def go():
            leader = etcd.leader()
            if leader:
                i = leader[0]
                etcd.members[i]["proc"].kill()
                etcd.members[i]["proc"].wait()
                killed.append(i)
        return go

    rows = failover_trials(etcd, 5, args.trials,
                           [("kill -9 owner, etcd move-leader 1 s later", move_leader),
                            ("kill -9 owner, kill -9 etcd leader 1 s later", kill_leader)])
    for i in killed:
        etcd.start(i, "existing")
    etcd.wait_healthy()
    rows += failover_trials(etcd, 2, args.trials,
                            [("kill -9 owner, etcd move-leader 1 s later", move_leader)])
    print("\n### Failover (kill -9 of an upstream's owner until a surviving replica's Pick is "
          "served by the new owner; polled every 10 ms)\n")
    print("| --member-ttl | event | seconds | errors seen meanwhile | loadavg |")
    print("|---|---|---|---|---|")
    for ttl, label, elapsed, errors, la in rows:
        print("| %ds | %s | %s | %s | %s |" % (
            ttl, label, "%.2f" % elapsed if elapsed is not None else "not within 60 s",
            ", ".join("%s x%d" % kv for kv in sorted(errors.items())) or "none", la))
    for ttl in (5, 2):
        plain = [e for t, l, e, _, _ in rows if t == ttl and l == "kill -9 owner" and e]
        if plain:
            print("\n--member-ttl %ds, plain kills: median %.2f s, min %.2f, max %.2f (%d trials)"
                  % (ttl, statistics.median(plain), min(plain), max(plain), len(plain)))


def part_spread(cluster):
    ups = upstreams_owned_by_each(cluster, "spread", 100)
    ids = sorted(ups)
    by_id = {r.id: r for r in cluster.replicas}
    mode = "unary"
    results = {}
    la = [loadavg()]

    def scenario(label, pairs):
        figs = run_bench([bench_cmd(r, u, mode, args.duration) for r, u in pairs])
        results.setdefault(label, []).append(figs)

    for _ in range(2):
        # Three replicas: each client at its upstream's owner, then at a non-owner.
        scenario("3 replicas, each client at its upstream's owner",
                 [(by_id[i], ups[i]) for i in ids])
        scenario("3 replicas, each client at a non-owner (all forwarded)",
                 [(by_id[ids[(k + 1) % 3]], ups[i]) for k, i in enumerate(ids)])
        # One replica: the other two leave (SIGTERM revokes their membership,
        # so the remaining one owns every upstream at once).
        for r in cluster.replicas[1:]:
            r.stop()
        cluster.wait_members()
        scenario("1 replica, all three clients at it",
                 [(cluster.replicas[0], ups[i]) for i in ids])
        for r in cluster.replicas[1:]:
            r.start()
        cluster.wait_members()
        time.sleep(1)
    la.append(loadavg())
    print("\n### Three replicas against one (3 picker-bench clients, one upstream each, "
          "unary Pick+Release, c=8 each, %d s; two rounds; loadavg %s -> %s)\n" % (
              args.duration, la[0], la[1]))
    print("| setup | total QPS, round 1 / 2 | client p50 ms (median) | client p99 ms (median) |")
    print("|---|---|---|---|")
    for label, rounds in results.items():
        totals = [sum(f["qps"] for f in figs) for figs in rounds]
        allf = [f for figs in rounds for f in figs]
        print("| %s | %s | %.3f | %.3f |" % (
            label, " / ".join("%.0f" % t for t in totals),
            statistics.median(f["p50"] for f in allf), statistics.median(f["p99"] for f in allf)))


def part_memory(cluster):
    before = {r.id: r.rss() for r in cluster.replicas}
    etcd_before = cluster.etcd.rss()
    admins = [r.admin_stub for r in cluster.replicas]
    t0 = time.monotonic()

    def one(i):
        create_upstream(admins[i % len(admins)], "mem-%05d" % i, args.targets,
                        base=(i * 7) % 60000)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(args.upstreams)))
    written = time.monotonic() - t0
    create_upstream(admins[0], "mem-marker", 1)  # applied after every earlier revision
    wait_served(cluster, "mem-marker", timeout=300)
    served = time.monotonic() - t0
    time.sleep(2)
    after = {r.id: r.rss() for r in cluster.replicas}
    etcd_after = cluster.etcd.rss()
    print("\n### Memory with %d upstreams of %d targets (round robin), created through the "
          "three admin APIs (8 clients): %.1f s to write, %.1f s until every replica served "
          "the last; loadavg %s\n" % (args.upstreams, args.targets, written, served, loadavg()))
    print("| process | RSS idle MiB | RSS after MiB |")
    print("|---|---|---|")
    for r in cluster.replicas:
        print("| replica %s | %.1f | %.1f |" % (r.id, before[r.id], after[r.id]))
    print("| etcd, 3 members together | %.1f | %.1f |" % (etcd_before, etcd_after))


def main():
    parts = args.parts.split(",")
    print("# replicas_bench: %s, nproc %d, loadavg %s: %s" % (
        time.strftime("%Y-%m-%d %H:%M:%S"), os.cpu_count(), loadavg(), " ".join(sys.argv)))
    etcd = Etcd(3)
    cluster = Cluster(etcd, ttl=5)
    for part, fn in (("forward", part_forward), ("propagate", part_propagate),
                     ("spread", part_spread)):
        if part in parts:
            fn(cluster)
            sys.stdout.flush()
    cluster.stop()
    if "failover" in parts:
        part_failover(etcd)
        sys.stdout.flush()
    if "memory" in parts:
        etcd.ctl("del", "--prefix", "/picker/upstreams/")
        cluster = Cluster(etcd, ttl=5)
        part_memory(cluster)
        cluster.stop()
    print("\n# done, loadavg %s" % loadavg())


if __name__ == "__main__":
    main()
