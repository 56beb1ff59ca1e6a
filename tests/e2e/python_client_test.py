#!/usr/bin/python3
"""End-to-end test of picker from a Python grpcio client.

Generates the picker.v1 stubs from protos/ into a temp dir at test time, starts
picker-server on ephemeral 127.0.0.1 ports and drives it: Admin setup, Pick and
Release (RELEASED, then ALREADY_RELEASED), active requests back to 0, NOT_FOUND
for an unknown upstream, and a PickStream round trip.

Run with /usr/bin/python3 (Debian's python3-grpcio and python3-protobuf).
Environment: PICKER_SERVER (binary), PICKER_SOURCE_DIR (repository root).
"""

import atexit
import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

FAILURES = []


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    FAILURES.append(msg)


def check(cond, msg):
    if cond:
        print("ok: " + msg)
    else:
        fail(msg)
    return cond


def die(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


try:
    import grpc
except ImportError as e:
    die("cannot import grpc (%s): run with /usr/bin/python3 after scripts/install-deps.sh "
        "(Debian python3-grpcio); this is %s" % (e, sys.executable))

SOURCE_DIR = os.environ.get("PICKER_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
SERVER = os.environ.get("PICKER_SERVER", "")
if not SERVER:
    die("PICKER_SERVER is not set (path of the picker-server binary; ctest sets it)")
if not os.access(SERVER, os.X_OK):
    die("picker-server not found or not executable at '%s' (build the picker-server target)" % SERVER)
PROTOC = shutil.which("protoc")
if not PROTOC:
    die("protoc not found on PATH: run scripts/install-deps.sh (Debian protobuf-compiler)")
GRPC_PLUGIN = "/usr/bin/grpc_python_plugin"
if not os.access(GRPC_PLUGIN, os.X_OK):
    die("%s not found: run scripts/install-deps.sh (Debian protobuf-compiler-grpc)" % GRPC_PLUGIN)

TMP = tempfile.mkdtemp(prefix="picker-python_client_test.")
SERVER_PROC = None
SERVER_LOG = os.path.join(TMP, "server.log")


def cleanup():
    if SERVER_PROC is not None and SERVER_PROC.poll() is None:
        SERVER_PROC.kill()
        SERVER_PROC.wait()
    if FAILURES and os.path.exists(SERVER_LOG):
        with open(SERVER_LOG, errors="replace") as f:
            lines = f.read().splitlines()[-30:]
        print("---- last lines of picker-server's log ----", file=sys.stderr)
        print("\n".join(lines), file=sys.stderr)
    shutil.rmtree(TMP, ignore_errors=True)


def on_time_limit(*_):
    fail("time limit reached: the test stops before ctest's TIMEOUT would kill it without cleaning up")
    sys.exit(1)


atexit.register(cleanup)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
signal.signal(signal.SIGALRM, on_time_limit)
signal.alarm(int(os.environ.get("E2E_TIME_LIMIT", "100")))

# ---- Stubs --------------------------------------------------------------------
stub_dir = os.path.join(TMP, "stubs")
os.makedirs(stub_dir)
protos = sorted(os.path.relpath(p, os.path.join(SOURCE_DIR, "protos"))
                for p in glob.glob(os.path.join(SOURCE_DIR, "protos", "picker", "v1", "*.proto")))
if not protos:
    die("no protos found under %s/protos/picker/v1" % SOURCE_DIR)
r = subprocess.run([PROTOC, "--python_out=" + stub_dir, "--grpc_python_out=" + stub_dir,
                    "--plugin=protoc-gen-grpc_python=" + GRPC_PLUGIN,
                    "-I", os.path.join(SOURCE_DIR, "protos")] + protos,
                   capture_output=True, text=True, timeout=60)
if r.returncode != 0:
    die("protoc failed (%d): %s" % (r.returncode, r.stderr))
sys.path.insert(0, stub_dir)
from picker.v1 import admin_pb2, admin_pb2_grpc, picker_pb2, picker_pb2_grpc  # noqa: E402

# ---- Server -------------------------------------------------------------------
data_dir = os.path.join(TMP, "data")
os.makedirs(data_dir)
log = open(SERVER_LOG, "w")
SERVER_PROC = subprocess.Popen([SERVER, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
                                "--metrics-listen", "127.0.0.1:0", "--data-dir", data_dir],
                               stdout=subprocess.DEVNULL, stderr=log)
addrs = None
deadline = time.monotonic() + 15
while time.monotonic() < deadline:
    with open(SERVER_LOG, errors="replace") as f:
        m = re.search(r"listening data=(\S+) admin=(\S+) metrics=(\S+)", f.read())
    if m:
        addrs = m.groups()
        break
    if SERVER_PROC.poll() is not None:
        fail("picker-server exited with %d before listening" % SERVER_PROC.returncode)
        sys.exit(1)
    time.sleep(0.1)
if addrs is None:
    fail("picker-server printed no 'listening data=... admin=... metrics=...' line within 15 s")
    sys.exit(1)
data_addr, admin_addr, _ = addrs
print("picker-server pid %d: data=%s admin=%s" % (SERVER_PROC.pid, data_addr, admin_addr))

TIMEOUT = 10  # seconds, every RPC
data_ch = grpc.insecure_channel(data_addr)
admin_ch = grpc.insecure_channel(admin_addr)
try:
    grpc.channel_ready_future(data_ch).result(timeout=10)
    grpc.channel_ready_future(admin_ch).result(timeout=10)
except grpc.FutureTimeoutError:
    fail("could not connect to picker-server within 10 s")
    sys.exit(1)
picker = picker_pb2_grpc.PickerStub(data_ch)
admin = admin_pb2_grpc.AdminStub(admin_ch)

UP = "py_upstream"
TARGETS = ["10.1.0.1:8080", "10.1.0.2:8080", "10.1.0.3:8080"]


def active_requests():
    h = admin.GetUpstreamHealth(admin_pb2.GetUpstreamHealthRequest(name=UP), timeout=TIMEOUT)
    return sum(t.active_requests for t in h.targets), h


def test_admin_setup():
    up = admin.CreateUpstream(admin_pb2.CreateUpstreamRequest(upstream=admin_pb2.Upstream(
        name=UP, load_balancer=admin_pb2.LoadBalancer(round_robin=admin_pb2.RoundRobin()))), timeout=TIMEOUT)
    check(up.name == UP, "CreateUpstream returns the upstream (%s)" % up.name)
    check(up.lease_ttl.ToSeconds() == 60, "CreateUpstream fills in the default lease_ttl 60s (got %ss)"
          % up.lease_ttl.ToSeconds())
    for a in TARGETS:
        t = admin.PutTarget(admin_pb2.PutTargetRequest(upstream=UP, target=admin_pb2.Target(address=a)),
                            timeout=TIMEOUT)
        check(t.address == a and t.weight == 100, "PutTarget %s (weight defaults to 100: %d)" % (a, t.weight))
    lst = admin.ListTargets(admin_pb2.ListTargetsRequest(upstream=UP), timeout=TIMEOUT)
    check([t.address for t in lst.targets] == TARGETS, "ListTargets in host-set order: %s"
          % [t.address for t in lst.targets])


def test_pick_release():
    resp = picker.Pick(picker_pb2.PickRequest(upstream=UP), timeout=TIMEOUT)
    check(resp.target in TARGETS, "Pick answers a target (%s)" % resp.target)
    check(resp.lease_id > 0, "Pick answers a lease id (%d)" % resp.lease_id)
    check(resp.lease_ttl.ToSeconds() == 60, "Pick answers the lease TTL (%ss)" % resp.lease_ttl.ToSeconds())
    n, h = active_requests()
    check(n == 1, "one active request while the lease is held (got %d)" % n)
    held = [t for t in h.targets if t.address == resp.target]
    check(len(held) == 1 and held[0].active_requests == 1,
          "the active request is counted on the picked target %s" % resp.target)

    req = picker_pb2.ReleaseRequest(upstream=UP, lease_id=resp.lease_id,
                                    outcome=picker_pb2.ReleaseRequest.SUCCESS)
    req.latency.FromMilliseconds(25)
    r1 = picker.Release(req, timeout=TIMEOUT)
    check(r1.state == picker_pb2.ReleaseResponse.RELEASED,
          "first Release: %s" % picker_pb2.ReleaseResponse.State.Name(r1.state))
    r2 = picker.Release(req, timeout=TIMEOUT)
    check(r2.state == picker_pb2.ReleaseResponse.ALREADY_RELEASED,
          "second Release: %s" % picker_pb2.ReleaseResponse.State.Name(r2.state))
    n, _ = active_requests()
    check(n == 0, "active requests back to 0 after Release (got %d)" % n)

    # Several picks, all released: round robin visits every target, count returns to 0.
    leases, seen = [], set()
    for _ in range(len(TARGETS) * 2):
        p = picker.Pick(picker_pb2.PickRequest(upstream=UP), timeout=TIMEOUT)
        leases.append(p.lease_id)
        seen.add(p.target)
    check(seen == set(TARGETS), "round robin over %d picks visits every target (%s)" % (len(leases), sorted(seen)))
    check(len(set(leases)) == len(leases), "lease ids are unique")
    n, _ = active_requests()
    check(n == len(leases), "%d active requests with %d leases held (got %d)" % (len(leases), len(leases), n))
    for lid in leases:
        picker.Release(picker_pb2.ReleaseRequest(upstream=UP, lease_id=lid), timeout=TIMEOUT)
    n, _ = active_requests()
    check(n == 0, "active requests back to 0 after releasing them all (got %d)" % n)


def expect_code(fn, code, what):
    try:
        fn()
    except grpc.RpcError as e:
        return check(e.code() == code, "%s: %s (expected %s) %r" % (what, e.code(), code, e.details()))
    return check(False, "%s: succeeded, expected %s" % (what, code))


def test_errors():
    expect_code(lambda: picker.Pick(picker_pb2.PickRequest(upstream="no_such_upstream"), timeout=TIMEOUT),
                grpc.StatusCode.NOT_FOUND, "Pick on an unknown upstream")
    expect_code(lambda: picker.Release(picker_pb2.ReleaseRequest(upstream="no_such_upstream", lease_id=1),
                                       timeout=TIMEOUT),
                grpc.StatusCode.NOT_FOUND, "Release on an unknown upstream")
    expect_code(lambda: admin.GetUpstreamHealth(admin_pb2.GetUpstreamHealthRequest(name="no_such_upstream"),
                                                timeout=TIMEOUT),
                grpc.StatusCode.NOT_FOUND, "GetUpstreamHealth of an unknown upstream")
    expect_code(lambda: admin.CreateUpstream(admin_pb2.CreateUpstreamRequest(upstream=admin_pb2.Upstream(name=UP)),
                                             timeout=TIMEOUT),
                grpc.StatusCode.ALREADY_EXISTS, "CreateUpstream of an existing name")
    # Bytes that are no PickRequest: upstream (field 1) holds a string that is
    # not UTF-8, which Python's protobuf refuses to build but the wire allows.
    raw_pick = data_ch.unary_unary("/picker.v1.Picker/Pick", request_serializer=lambda b: b,
                                   response_deserializer=lambda b: b)
    try:
        raw_pick(b"\x0a\x02\xff\xfe", timeout=TIMEOUT)
        check(False, "Pick with a non-UTF-8 upstream: succeeded, expected INVALID_ARGUMENT")
    except grpc.RpcError as e:
        check(e.code() == grpc.StatusCode.INVALID_ARGUMENT and
              "'picker.v1.PickRequest.upstream' contains invalid UTF-8" in e.details(),
              "Pick with a non-UTF-8 upstream: %s %r" % (e.code(), e.details()))


def test_pick_stream():
    import queue
    q = queue.Queue()

    def requests():
        while True:
            item = q.get()
            if item is None:
                return
            yield item

    call = picker.PickStream(requests(), timeout=TIMEOUT)
    answers = iter(call)

    q.put(picker_pb2.PickStreamRequest(request_id=7, pick=picker_pb2.PickRequest(upstream=UP)))
    a1 = next(answers)
    check(a1.request_id == 7 and a1.code == 0 and a1.pick.target in TARGETS and a1.pick.lease_id > 0,
          "PickStream answers request 7 with a pick (%s, code %d)" % (a1.pick.target, a1.code))
    n, _ = active_requests()
    check(n == 1, "PickStream's lease is counted (got %d active)" % n)

    # Release the first lease and pick again in one message.
    q.put(picker_pb2.PickStreamRequest(
        request_id=8, pick=picker_pb2.PickRequest(upstream=UP),
        releases=[picker_pb2.ReleaseRequest(upstream=UP, lease_id=a1.pick.lease_id)]))
    a2 = next(answers)
    check(a2.request_id == 8 and a2.code == 0 and a2.pick.lease_id not in (0, a1.pick.lease_id),
          "PickStream answers request 8 with a new lease")
    n, _ = active_requests()
    check(n == 1, "the release on the stream took effect: 1 active (got %d)" % n)

    # An error is an answer on the stream, not the end of it.
    q.put(picker_pb2.PickStreamRequest(request_id=9, pick=picker_pb2.PickRequest(upstream="no_such_upstream")))
    a3 = next(answers)
    check(a3.request_id == 9 and a3.code == grpc.StatusCode.NOT_FOUND.value[0],
          "PickStream answers an unknown upstream with code 5 NOT_FOUND in-band (got %d %r)" % (a3.code, a3.message))

    # Closing the stream releases what it still holds (abandoned).
    q.put(None)
    rest = list(answers)
    check(rest == [], "PickStream ends cleanly after the client closes (%d extra answers)" % len(rest))
    deadline = time.monotonic() + 5
    while True:
        n, _ = active_requests()
        if n == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    check(n == 0, "closing the stream releases its held lease: 0 active (got %d)" % n)
    r = picker.Release(picker_pb2.ReleaseRequest(upstream=UP, lease_id=a2.pick.lease_id), timeout=TIMEOUT)
    check(r.state in (picker_pb2.ReleaseResponse.ALREADY_RELEASED,),
          "Release of a lease abandoned by its stream: %s" % picker_pb2.ReleaseResponse.State.Name(r.state))


for test in (test_admin_setup, test_pick_release, test_errors, test_pick_stream):
    print("== %s" % test.__name__)
    try:
        test()
    except Exception as e:  # an unexpected RPC error fails this test, the others still run
        traceback.print_exc()
        fail("%s raised %s: %s" % (test.__name__, type(e).__name__, e))

data_ch.close()
admin_ch.close()

# SIGTERM drains and exits 0.
SERVER_PROC.send_signal(signal.SIGTERM)
try:
    rc = SERVER_PROC.wait(timeout=15)
    check(rc == 0, "picker-server exits 0 on SIGTERM (got %d)" % rc)
except subprocess.TimeoutExpired:
    fail("picker-server still running 15 s after SIGTERM")

if FAILURES:
    print("python_client_test: %d check(s) failed" % len(FAILURES), file=sys.stderr)
    sys.exit(1)
print("python_client_test: all checks passed")
