#!/usr/bin/python3
"""Soak: picker-server under mixed traffic and abusive clients, for a while.

Starts picker-server on 127.0.0.1 ports with --max-connections and
--max-memory, then runs for --duration seconds, at once:

  pickers      unary Pick + Release in a loop (a few threads)
  streams      PickStream clients that read their answers and release
  writers      admin churn: CreateUpstream, ReplaceTargets, PutTarget,
               DeleteUpstream, ListUpstreams and ListTargets pages
  never-read   PickStream clients that send and never read (re-opened every 20 s)
  floods       bursts of raw TCP connections above --max-connections, then closed
  oversize     Picks over the data port's 64 KiB limit, 65-entry excludes,
               101-header attributes, choice_count 4294967295, garbage bytes

Every --sample seconds it records the server's resident memory, open
descriptors and what each kind of client got done, and at the end prints a
table and a verdict: resident memory and descriptors must stay flat (the
last third of the run no more than 15% and 64 descriptors above the first
third, after a one-minute warm-up). Not part of CI: run it by hand.

  /usr/bin/python3 bench/soak.py --server build/picker-server --duration 600
"""

import argparse
import glob
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

import grpc

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--server", default="build/picker-server")
parser.add_argument("--duration", type=float, default=600)
parser.add_argument("--sample", type=float, default=10)
parser.add_argument("--warmup", type=float, default=60)
parser.add_argument("--source", default=os.path.join(os.path.dirname(__file__), ".."))
parser.add_argument("--only", default="",
                    help="comma-separated workloads to run (pickers, streams, writers, never_read, "
                         "floods, oversize); all by default")
args = parser.parse_args()

TMP = tempfile.mkdtemp(prefix="picker-soak.")
stubs = os.path.join(TMP, "stubs")
os.makedirs(stubs)
protos = sorted(os.path.relpath(p, os.path.join(args.source, "protos"))
                for p in glob.glob(os.path.join(args.source, "protos", "picker", "v1", "*.proto")))
subprocess.run(["protoc", "--python_out=" + stubs, "--grpc_python_out=" + stubs,
                "--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin",
                "-I", os.path.join(args.source, "protos")] + protos, check=True)
sys.path.insert(0, stubs)
from picker.v1 import admin_pb2, admin_pb2_grpc, picker_pb2, picker_pb2_grpc  # noqa: E402

log_path = os.path.join(TMP, "server.log")
log = open(log_path, "w")
server = subprocess.Popen(
    [args.server, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
     "--metrics-listen", "127.0.0.1:0", "--data-dir", os.path.join(TMP, "data"),
     "--max-connections", "256", "--max-memory", str(1 << 30)],
    stdout=subprocess.DEVNULL, stderr=log)
deadline = time.monotonic() + 20
while True:
    log.flush()
    with open(log_path) as f:
        m = re.search(r"listening data=(\S+) admin=(\S+) metrics=(\S+)", f.read())
    if m or time.monotonic() > deadline or server.poll() is not None:
        break
    time.sleep(0.1)
if not m:
    sys.exit("picker-server did not start: " + open(log_path).read()[-2000:])
data, admin, _ = m.groups()
print("picker-server pid %d data=%s admin=%s, %d s" % (server.pid, data, admin, args.duration),
      flush=True)

STOP = threading.Event()
COUNTS = {k: 0 for k in ("picks", "stream_picks", "writes", "reads", "never_read_msgs",
                         "flood_conns", "oversize", "errors")}
LOCK = threading.Lock()


def count(key, n=1):
    with LOCK:
        COUNTS[key] += n


def addresses(n, base=0):
    return ["10.%d.%d.%d:80" % ((i >> 16) & 255, (i >> 8) & 255, i & 255)
            for i in range(base, base + n)]


setup = admin_pb2_grpc.AdminStub(grpc.insecure_channel(admin))
for i in range(8):
    up = admin_pb2.Upstream(name="soak%d" % i)
    if i % 2:
        up.load_balancer.least_request.choice_count = 3
    else:
        up.load_balancer.maglev.hash_policies.add(header=admin_pb2.HashPolicy.Header(name="x-user"))
    setup.CreateUpstream(admin_pb2.CreateUpstreamRequest(upstream=up), timeout=10)
    req = admin_pb2.ReplaceTargetsRequest(upstream="soak%d" % i)
    for a in addresses(50, i * 100):
        req.targets.add(address=a)
    setup.ReplaceTargets(req, timeout=10)


def pickers():
    stub = picker_pb2_grpc.PickerStub(grpc.insecure_channel(data))
    rng = random.Random()
    while not STOP.is_set():
        u = "soak%d" % rng.randrange(8)
        try:
            p = stub.Pick(picker_pb2.PickRequest(upstream=u, attributes=picker_pb2.RequestAttributes(
                headers={"x-user": str(rng.randrange(1000))})), timeout=5)
            stub.Release(picker_pb2.ReleaseRequest(upstream=u, lease_id=p.lease_id), timeout=5)
            count("picks")
        except grpc.RpcError:
            count("errors")


def streams():
    stub = picker_pb2_grpc.PickerStub(grpc.insecure_channel(data))
    while not STOP.is_set():
        leases = []

        def requests():
            for i in range(2000):
                if STOP.is_set():
                    return
                rel = [picker_pb2.ReleaseRequest(upstream="soak1", lease_id=l) for l in leases[:8]]
                del leases[:8]
                yield picker_pb2.PickStreamRequest(request_id=i + 1, releases=rel,
                                                   pick=picker_pb2.PickRequest(upstream="soak1"))
                time.sleep(0.001)
        try:
            for answer in stub.PickStream(requests(), timeout=60):
                if answer.pick.lease_id:
                    leases.append(answer.pick.lease_id)
                count("stream_picks")
        except grpc.RpcError:
            count("errors")


def writers():
    stub = admin_pb2_grpc.AdminStub(grpc.insecure_channel(admin))
    rng = random.Random(7)
    n = 0
    while not STOP.is_set():
        n += 1
        name = "churn%d" % (n % 20)
        try:
            stub.DeleteUpstream(admin_pb2.DeleteUpstreamRequest(name=name), timeout=10)
        except grpc.RpcError:
            pass
        try:
            stub.CreateUpstream(admin_pb2.CreateUpstreamRequest(
                upstream=admin_pb2.Upstream(name=name)), timeout=10)
            req = admin_pb2.ReplaceTargetsRequest(upstream=name)
            for a in addresses(rng.randrange(10, 2000), n):
                req.targets.add(address=a)
            stub.ReplaceTargets(req, timeout=10)
            stub.PutTarget(admin_pb2.PutTargetRequest(upstream="soak%d" % (n % 8), target=admin_pb2.Target(
                address="10.9.%d.%d:80" % (n % 200, n % 250), weight=rng.randrange(1, 100))), timeout=10)
            count("writes", 3)
            token = ""
            while True:
                page = stub.ListUpstreams(admin_pb2.ListUpstreamsRequest(page_size=7, page_token=token),
                                          timeout=10)
                token = page.next_page_token
                count("reads")
                if not token:
                    break
            stub.ListTargets(admin_pb2.ListTargetsRequest(upstream=name, page_size=500), timeout=10)
            count("reads")
        except grpc.RpcError:
            count("errors")
        time.sleep(0.02)


def never_read():
    while not STOP.is_set():
        ch = grpc.insecure_channel(data, options=[("grpc.http2.bdp_probe", 0),
                                                  ("grpc.http2.lookahead_bytes", 65536)])

        def requests():
            i = 0
            while not STOP.is_set():
                i += 1
                count("never_read_msgs")
                yield picker_pb2.PickStreamRequest(request_id=i, pick=picker_pb2.PickRequest(
                    upstream="soak0", attributes=picker_pb2.RequestAttributes(headers={"p": "x" * 300})))
        call = picker_pb2_grpc.PickerStub(ch).PickStream(requests())
        STOP.wait(20)
        call.cancel()
        ch.close()


def floods():
    host, port = data.rsplit(":", 1)
    while not STOP.is_set():
        conns = []
        for _ in range(400):
            c = socket.socket()
            c.settimeout(2)
            try:
                c.connect((host, int(port)))
                conns.append(c)
            except OSError:
                c.close()
        count("flood_conns", len(conns))
        STOP.wait(2)
        for c in conns:
            c.close()
        STOP.wait(3)


def oversize():
    stub = picker_pb2_grpc.PickerStub(grpc.insecure_channel(data))
    astub = admin_pb2_grpc.AdminStub(grpc.insecure_channel(admin))
    big = picker_pb2.PickRequest(upstream="soak0")
    big.attributes.headers["x"] = "v" * (100 << 10)
    many = picker_pb2.PickRequest(upstream="soak0", exclude=addresses(65))
    headers = picker_pb2.PickRequest(upstream="soak0")
    for i in range(101):
        headers.attributes.headers["h%d" % i] = "v"
    lr = admin_pb2.Upstream(name="evil")
    lr.load_balancer.least_request.choice_count = 4294967295
    garbage = grpc.insecure_channel(data).unary_unary(
        "/picker.v1.Picker/Pick", request_serializer=lambda b: b, response_deserializer=lambda b: b)
    while not STOP.is_set():
        for call in (lambda: stub.Pick(big, timeout=5), lambda: stub.Pick(many, timeout=5),
                     lambda: stub.Pick(headers, timeout=5),
                     lambda: astub.CreateUpstream(admin_pb2.CreateUpstreamRequest(upstream=lr), timeout=5),
                     lambda: garbage(os.urandom(200), timeout=5)):
            try:
                call()
            except grpc.RpcError:
                pass
            count("oversize")
        time.sleep(0.05)


def rss():
    with open("/proc/%d/status" % server.pid) as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1)) // 1024


def fds():
    return len(os.listdir("/proc/%d/fd" % server.pid))


workloads = [pickers] * 3 + [streams] * 2 + [writers, never_read, never_read, floods, oversize]
if args.only:
    workloads = [f for f in workloads if f.__name__ in args.only.split(",")]
threads = [threading.Thread(target=f, daemon=True) for f in workloads]
for t in threads:
    t.start()
samples = []
start = time.monotonic()
print("%6s %8s %6s  %s" % ("t(s)", "RSS MiB", "fds", "counts"), flush=True)
while time.monotonic() - start < args.duration and server.poll() is None:
    time.sleep(args.sample)
    t = time.monotonic() - start
    with LOCK:
        snapshot = dict(COUNTS)
    samples.append((t, rss(), fds()))
    print("%6.0f %8d %6d  %s" % (t, samples[-1][1], samples[-1][2],
                                 " ".join("%s=%d" % kv for kv in snapshot.items())), flush=True)
STOP.set()
alive = server.poll() is None
if alive:
    server.terminate()
    server.wait(30)
shutil.rmtree(TMP, ignore_errors=True)
if not alive:
    sys.exit("FAIL: picker-server died (exit %s)" % server.returncode)

steady = [s for s in samples if s[0] >= args.warmup] or samples
third = max(1, len(steady) // 3)
first, last = steady[:third], steady[-third:]
rss_first, rss_last = max(s[1] for s in first), max(s[1] for s in last)
fds_first, fds_last = max(s[2] for s in first), max(s[2] for s in last)
print("after the %d s warm-up: RSS max %d MiB (first third) -> %d MiB (last third); "
      "descriptors max %d -> %d; RSS range %d..%d MiB" %
      (args.warmup, rss_first, rss_last, fds_first, fds_last,
       min(s[1] for s in steady), max(s[1] for s in steady)))
flat = rss_last <= rss_first * 1.15 and fds_last <= fds_first + 64
print("verdict: %s" % ("flat" if flat else "GROWING"))
sys.exit(0 if flat else 1)
