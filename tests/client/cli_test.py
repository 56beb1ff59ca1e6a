#!/usr/bin/python3
"""picker-cli against a real picker-server with TLS and an admin token.

Every command runs for real: list, get, create, update, delete, targets,
put-target, delete-target, set-health, clear-health, health, explain, dump,
diff, apply (--prune, --dry-run), pick, release, healthcheck, version, with
-o json and -o yaml. Checks that dump then apply is a no-op (diff says so),
also past the first page of every listing (more than 100 upstreams and
targets) and with every strategy's options,
that --dry-run (validate_only) changes nothing (the revision the server
answers and the data directory's files stay the same), the exit-code rule,
and that SIGHUP re-reads --config: a good file is applied, a bad one is
logged and changes nothing.

Needs PICKER_SERVER, PICKER_CLI (ctest passes them) and openssl.
"""
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

SERVER = os.environ["PICKER_SERVER"]
CLI = os.environ["PICKER_CLI"]
failures = []


def check(condition, message):
    print(("ok: " if condition else "FAIL: ") + message)
    if not condition:
        failures.append(message)
    return condition


def make_certs(d):
    script = f"""set -e; cd {d}
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=picker-cli-test-ca -keyout ca.key -out ca.pem 2>/dev/null
for who in server client; do
  openssl req -newkey rsa:2048 -nodes -subj /CN=$who -keyout $who.key -out $who.csr 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > $who.ext
  openssl x509 -req -in $who.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 -extfile $who.ext -out $who.pem 2>/dev/null
done"""
    subprocess.run(["bash", "-c", script], check=True)


class Server:
    def __init__(self, args):
        self.proc = subprocess.Popen([SERVER] + args, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.log = []
        self.ready = threading.Event()
        self.addresses = {}
        threading.Thread(target=self._drain, daemon=True).start()
        self.ready.wait(20)
        if "data" not in self.addresses:
            raise SystemExit("FAIL: the server did not start:\n" + "".join(self.log))

    def _drain(self):
        for line in self.proc.stdout:
            self.log.append(line)
            m = re.search(r"listening data=(\S+) admin=(\S+)", line)
            if m:
                self.addresses.update(data=m[1], admin=m[2])
                self.ready.set()
        self.ready.set()

    def wait_log(self, pattern, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if any(re.search(pattern, line) for line in self.log):
                return True
            time.sleep(0.05)
        return False

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(15)


def mutual_tls(tmp, expect):
    """--tls-cert and --tls-key: the client's certificate, for a server that
    asks for one (--tls-client-ca); without it the handshake fails."""
    pem = lambda name: os.path.join(tmp, name)
    server = Server(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
                     "--metrics-listen", "127.0.0.1:0", "--data-dir", pem("mtls-data"),
                     "--tls-cert", pem("server.pem"), "--tls-key", pem("server.key"),
                     "--tls-client-ca", pem("ca.pem")])
    try:
        server_flags = ["--admin-addr", server.addresses["admin"],
                        "--addr", server.addresses["data"], "--tls-ca", pem("ca.pem")]
        expect(["list"], 112, r"UNAVAILABLE", flags=server_flags)
        with_cert = server_flags + ["--tls-cert", pem("client.pem"), "--tls-key", pem("client.key")]
        expect(["create", "mtls"], 0, None, flags=with_cert)
        expect(["list"], 0, r"mtls", flags=with_cert)
        expect(["put-target", "mtls", "10.9.9.1:80"], 0, r"10\.9\.9\.1:80", flags=with_cert)
        expect(["pick", "mtls", "--release"], 0, r"state=RELEASED", flags=with_cert)
        expect(["pick", "mtls"], 112, r"UNAVAILABLE", flags=server_flags)
    finally:
        server.stop()


# picker's upstreams for the Kong Mesh policy documents below.
MESH_UPSTREAMS = """upstreams:
  - name: backend
    targets: [{target: '10.7.0.1:80'}, {target: '10.7.0.2:80'}, {target: '10.7.0.3:80'}]
  - name: other
    targets: [{target: '10.8.0.1:80'}, {target: '10.8.0.2:80'}]
"""

# The spec of the MeshLoadBalancingStrategy page's first example: from web
# to backend, ring hash on x-header.
PAGE_SPEC = """spec:
  targetRef:
    kind: MeshService
    name: web
  to:
    - targetRef:
        kind: MeshService
        name: backend
      default:
        loadBalancer:
          type: RingHash
          ringHash:
            hashPolicies:
              - type: Header
                header:
                  name: x-header
"""


def main():
    tmp = tempfile.mkdtemp(prefix="picker-cli-test-")
    make_certs(tmp)
    with open(os.path.join(tmp, "token"), "w") as f:
        f.write("s3cret\n")
    config = os.path.join(tmp, "picker.yaml")
    with open(config, "w") as f:
        f.write("upstreams:\n- name: declared\n  targets:\n  - {target: '10.9.0.1:80'}\n")
    data_dir = os.path.join(tmp, "data")
    server = Server(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
                     "--metrics-listen", "127.0.0.1:0", "--data-dir", data_dir,
                     "--config", config,
                     "--tls-cert", os.path.join(tmp, "server.pem"),
                     "--tls-key", os.path.join(tmp, "server.key"),
                     "--admin-token-file", os.path.join(tmp, "token")])
    tls = ["--tls-ca", os.path.join(tmp, "ca.pem")]
    auth = ["--admin-addr", server.addresses["admin"], "--addr", server.addresses["data"],
            "--token-file", os.path.join(tmp, "token")] + tls

    def cli(*args, flags=auth):
        # Global flags after the command, to show they work anywhere.
        r = subprocess.run([CLI] + list(args) + flags, capture_output=True, text=True, timeout=60)
        return r.returncode, r.stdout, r.stderr

    def expect(args, code=0, out=None, flags=auth):
        rc, stdout, stderr = cli(*args, flags=flags)
        check(rc == code and (out is None or re.search(out, stdout + stderr, re.S)),
              f"picker-cli {' '.join(args)} -> {rc} (want {code}{', /' + out + '/' if out else ''})"
              + ("" if rc == code else f": {stdout}{stderr}"))
        return stdout

    try:
        # Version, help, and the exit-code rule for usage errors.
        expect(["--version"], 0, r"^picker-cli \d+\.\d+\.\d+", flags=[])
        expect(["--help"], 0, r"dump", flags=[])
        expect(["frobnicate"], 2, r"unknown command 'frobnicate'.*--help", flags=[])
        expect(["list", "--frob"], 2, r"unknown flag --frob.*--help", flags=[])
        expect(["get"], 2, r"get takes UPSTREAM")
        expect(["list", "-o", "xml"], 2, r"table, json or yaml")
        # No token: UNAUTHENTICATED (16) x 8; health needs none.
        expect(["list"], 128, r"UNAUTHENTICATED",
               flags=["--admin-addr", server.addresses["admin"]] + tls)
        expect(["healthcheck"], 0, r"SERVING", flags=["--addr", server.addresses["data"]] + tls)

        # Upstreams and targets, one command at a time.
        expect(["create", "users", "--strategy", "ring_hash", "--header-policy", "x-user"], 0,
               r"created upstream users \(ring_hash\)")
        expect(["create", "users"], 48, r"ALREADY_EXISTS")
        for address in ("10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:8080"):
            expect(["put-target", "users", address], 0, re.escape(address))
        expect(["put-target", "users", "10.0.0.3:8080", "--weight", "50", "--zone", "z1"], 0,
               r"10\.0\.0\.3:8080\s+50\s+z1")
        expect(["list"], 0, r"users\s+ring_hash\s+1m")
        expect(["get", "users"], 0, r"loadBalancer\.ringHash\.hashPolicies\[0\]\.header\.name\s+x-user")
        expect(["targets", "users"], 0, r"10\.0\.0\.2:8080\s+100")
        got = json.loads(expect(["get", "users", "-o", "json"]))
        check(got["loadBalancer"]["ringHash"]["minRingSize"] == "1024", "get -o json is the API's JSON")
        expect(["targets", "users", "-o", "yaml"], 0, r"(?m)^targets:\n  - address: 10\.0\.0\.1:8080")
        # update: the flags given are the mask; the strategy is kept.
        expect(["update", "users", "--lease-ttl", "5s"], 0, r"leaseTtl\s+5s")
        expect(["get", "users"], 0, r"loadBalancer\.ringHash\.minRingSize\s+1024")
        expect(["update", "users", "--json", '{"leaseTtl":"7s"}', "--mask", "leaseTtl"], 24,
               r"unknown field")
        expect(["update", "users", "--json", '{"leaseTtl":"7s"}', "--mask", "lease_ttl"], 0,
               r"leaseTtl\s+7s")
        expect(["update", "users", "--json", '{"loadBalancer":{"maglev":{}}}', "--mask",
                "load_balancer.maglev"], 24, r"not in the stored strategy")
        expect(["set-health", "users", "10.0.0.2:8080", "unhealthy"], 0,
               r"10\.0\.0\.2:8080\s+no\s+MANUAL")
        expect(["health", "users"], 0, r"2 of 3 targets healthy")
        x = json.loads(expect(["explain", "users", "--header", "x-user=42", "-o", "json"]))
        check(x.get("deterministic") and x["target"] != "10.0.0.2:8080",
              f"explain names a healthy target ({x.get('target')})")
        check({"address": "10.0.0.2:8080", "reason": "unhealthy", "checks": ["MANUAL"]}
              in x.get("leftOut", []), "explain says why 10.0.0.2:8080 is left out")
        report = expect(["explain", "users", "--header", "x-user=42"], 0, r"chosen: ")
        check("left out 10.0.0.2:8080: unhealthy (MANUAL)" in report, "explain's report")
        pick = expect(["pick", "users", "--header", "x-user=42", "--release"], 0, r"state=RELEASED")
        check(f"target={x['target']} " in pick, "the pick goes where explain said")
        expect(["clear-health", "users", "10.0.0.2:8080"], 0, r"10\.0\.0\.2:8080\s+yes")
        held = expect(["pick", "users", "--upstream", "users"], 0, r"lease_id=")
        lease = re.search(r"lease_id=(\d+)", held)[1]
        expect(["release", "users", "--lease-id", lease, "--outcome", "failure"], 0,
               r"state=RELEASED")
        expect(["pick", "users", "--stream"], 2, r"--stream needs --release")
        expect(["pick", "nothere"], 40, r"NOT_FOUND")

        # --dry-run (validate_only) answers what would be stored and changes nothing.
        def files():
            out = {}
            for root, _, names in os.walk(data_dir):
                for n in names:
                    if n.endswith(".lock"):
                        continue
                    with open(os.path.join(root, n), "rb") as f:
                        out[os.path.join(root, n)] = hashlib.sha256(f.read()).hexdigest()
            return out
        before_files = files()
        expect(["put-target", "users", "10.0.0.4:8080", "--dry-run"], 0, r"dry run")
        expect(["delete-target", "users", "10.0.0.1:8080", "--dry-run"], 0, r"dry run")
        expect(["delete", "users", "--dry-run"], 0, r"dry run")
        expect(["update", "users", "--strategy", "maglev", "--dry-run"], 0, r"maglev")
        expect(["set-health", "users", "10.0.0.1:8080", "unhealthy", "--dry-run"], 0, r"dry run")
        expect(["create", "other", "--dry-run"], 0, r"dry run")
        expect(["put-target", "users", "bad address", "--dry-run"], 24, r"INVALID_ARGUMENT")
        check(files() == before_files, "--dry-run leaves every file of the data directory as it was")
        expect(["targets", "users"], 0, r"10\.0\.0\.1:8080")
        expect(["get", "other"], 40, r"NOT_FOUND")

        # dump, then apply of the result: nothing to do, and diff says so.
        dump = os.path.join(tmp, "dump.yaml")
        with open(dump, "w") as f:
            f.write(expect(["dump"], 0, r"(?m)^upstreams:"))
        expect(["diff", dump], 0, r"^no changes")
        before_files = files()
        expect(["apply", dump], 0, r"^no changes")
        check(files() == before_files, "apply of a fresh dump writes nothing")
        # An edit: diff previews it (exit 1), apply --dry-run too, apply makes it.
        text = open(dump).read().replace("minRingSize: 1024", "minRingSize: 4096")
        with open(dump, "w") as f:
            f.write(text)
        expect(["diff", dump], 1, r"minRingSize: 1024 -> 4096(.|\n)*hash space that changes owner")
        expect(["apply", dump, "--dry-run"], 1, r"hash space that changes owner")
        expect(["get", "users"], 0, r"minRingSize\s+1024")
        # apply says what it changed, then what it did.
        expect(["apply", dump], 0, r"minRingSize: 1024 -> 4096.*updated upstream users")
        expect(["diff", dump], 0, r"no changes")
        # Pages (AIP-158: the server answers 100 per page unless asked for
        # more): 105 more upstreams, one upstream ("big") of 107 targets, and
        # the strategies' own options. Every listing reads every page, so
        # dump then apply deletes nothing, and a change on page 2 is seen.
        lines = ["upstreams:",
                 "- name: a-ewma\n  loadBalancer:\n    type: PeakEwma\n"
                 "    peakEwma: {choiceCount: 7, decayTime: 250ms, failurePenalty: 2s}",
                 "- name: a-lr-slow\n  loadBalancer:\n    type: LeastRequest\n"
                 "    leastRequest: {choiceCount: 3, slowStartConfig: {slowStartWindow: 500ms, "
                 "minWeightPercent: 25}}",
                 "- name: a-rr-slow\n  loadBalancer:\n    type: RoundRobin\n"
                 "    roundRobin: {slowStartConfig: {slowStartWindow: 30s, aggression: 2}}",
                 "- name: a-wrr\n  loadBalancer:\n    type: WeightedRoundRobin\n"
                 "    weightedRoundRobin: {blackoutPeriod: 0s, weightExpirationPeriod: 1m, "
                 "weightUpdatePeriod: 200ms, errorUtilizationPenalty: 0.5}",
                 "- name: big\n  targets:"]
        lines += [f"  - {{target: '10.2.0.{i}:80'}}" for i in range(1, 108)]
        lines += [f"- name: p{i:03d}\n  targets:\n  - {{target: '10.1.0.{i + 1}:80'}}"
                  for i in range(105)]
        many = os.path.join(tmp, "many.yaml")
        with open(many, "w") as f:
            f.write("\n".join(lines) + "\n")
        expect(["apply", many], 0, r"created upstream p104")
        # 112 upstreams by name: a-ewma ... big, declared, p000 ... p093 on
        # page 1; p094 ... p104 and users on page 2.
        listed = json.loads(expect(["list", "-o", "json"]))
        names = [u["name"] for u in listed["upstreams"]]
        check(len(names) == 112 and "p104" in names and "users" in names
              and "nextPageToken" not in listed, f"list -o json has all 112 upstreams ({len(names)})")
        expect(["list"], 0, r"(?m)^p104\s+round_robin.*^users\s+ring_hash")
        expect(["list"], 0, r"(?m)^a-ewma\s+peak_ewma\s.*^a-wrr\s+weighted_round_robin\s")
        targets = json.loads(expect(["targets", "big", "-o", "json"]))["targets"]
        check(len(targets) == 107, f"targets -o json has all 107 targets ({len(targets)})")
        expect(["targets", "big"], 0, r"10\.2\.0\.107:80\s+100")
        health = json.loads(expect(["health", "big", "-o", "json"]))
        check(len(health["targets"]) == 107, f"health -o json has 107 targets ({len(health['targets'])})")
        expect(["health", "big"], 0, r"107 of 107 targets healthy.*10\.2\.0\.107:80\s+yes")
        expect(["get", "a-ewma"], 0, r"loadBalancer\.peakEwma\.choiceCount\s+7")
        with open(dump, "w") as f:
            f.write(expect(["dump"], 0, r"name: p104.*name: users"))
        text = open(dump).read()
        check(text.count('"10.2.0.') == 107, "dump writes all 107 targets of big")
        check("type: PeakEwma" in text and "type: WeightedRoundRobin" in text
              and text.count("slowStartConfig") == 2, "dump writes PeakEwma, WRR and slow start")
        expect(["diff", dump], 0, r"^no changes")
        before_files = files()
        expect(["apply", dump], 0, r"^no changes")
        check(files() == before_files, "apply of a fresh dump of 112 upstreams writes nothing")
        targets = json.loads(expect(["targets", "big", "-o", "json"]))["targets"]
        check(len(targets) == 107, f"big keeps its 107 targets after dump and apply ({len(targets)})")
        # Changes on page 2: the last target of big, and upstream p104.
        text = text.replace('{target: "10.2.0.107:80", weight: 100}',
                            '{target: "10.2.0.107:80", weight: 5}')
        text = text.replace('{target: "10.1.0.105:80", weight: 100}',
                            '{target: "10.1.0.105:80", weight: 9}')
        with open(dump, "w") as f:
            f.write(text)
        expect(["diff", dump], 1, r"~ upstream big\n  ~ target 10\.2\.0\.107:80 weight 100 -> 5")
        expect(["diff", dump], 1, r"~ upstream p104\n  ~ target 10\.1\.0\.105:80 weight 100 -> 9")
        expect(["apply", dump], 0, r"~ target 10\.2\.0\.107:80 weight 100 -> 5\n"
               r"replaced the targets of big \(107 targets\)")
        expect(["diff", dump], 0, r"^no changes")
        # The strategies picker-cli names (the oneof's names).
        expect(["create", "x", "--strategy", "peak_ewma", "--dry-run"], 0,
               r"created upstream x \(peak_ewma\)")
        expect(["create", "x", "--strategy", "weighted_round_robin", "--dry-run"], 0,
               r"created upstream x \(weighted_round_robin\)")
        expect(["create", "x", "--strategy", "fastest"], 2, r"peak_ewma or weighted_round_robin")
        # `version` and `help` are commands only in the command's place.
        expect(["version"], 0, r"^picker-cli \d+\.\d+\.\d+", flags=[])
        expect(["help"], 0, r"dump", flags=[])
        expect(["get", "version"], 40, r"NOT_FOUND")
        expect(["get", "help"], 40, r"NOT_FOUND")

        # --prune deletes what the file does not declare; without it, nothing.
        only = os.path.join(tmp, "only.yaml")
        with open(only, "w") as f:
            f.write("upstreams:\n- name: declared\n  targets:\n  - {target: '10.9.0.1:80'}\n")
        expect(["apply", only], 0, r"no changes")
        expect(["diff", only, "--prune"], 1, r"- upstream users")
        expect(["apply", only, "--prune"], 0, r"(?=.*deleted upstream users)(?=.*deleted upstream p104)")
        listed = json.loads(expect(["list", "-o", "json"]))
        check([u["name"] for u in listed["upstreams"]] == ["declared"],
              "--prune deleted the upstreams of every page")
        expect(["get", "users"], 40)
        expect(["diff", os.path.join(tmp, "missing.yaml")], 3, r"No such file")
        expect(["delete", "declared"], 0, r"deleted upstream declared")

        # Kong Mesh's MeshLoadBalancingStrategy, in both forms, beside picker's
        # own upstreams: the policy page's first example ("from web to
        # backend", Kubernetes form) and a Mesh-wide default (Universal form).
        mesh = os.path.join(tmp, "mesh.yaml")
        with open(mesh, "w") as f:
            f.write(MESH_UPSTREAMS + """---
apiVersion: kuma.io/v1alpha1
kind: MeshLoadBalancingStrategy
metadata:
  name: ring-hash
  namespace: kong-mesh-system
  labels:
    kuma.io/mesh: default
""" + PAGE_SPEC + """---
type: MeshLoadBalancingStrategy
name: least-everywhere
mesh: default
spec:
  targetRef:
    kind: Mesh
  to:
    - targetRef:
        kind: Mesh
      default:
        loadBalancer:
          type: LeastRequest
""")
        expect(["apply", mesh], 0, r"created upstream backend")
        expect(["get", "backend"], 0,
               r"clientConfigs\[0\]\.loadBalancer\.ringHash\.hashPolicies\[0\]\.header\.name\s+x-header")
        expect(["get", "backend"], 0, r"clientConfigs\[0\]\.client\.service\s+web")
        expect(["get", "other"], 0, r"loadBalancer\.leastRequest")

        def targets(*flags):
            return [re.search(r"target=(\S+)", expect(["pick", "backend", *flags, "--release"]))[1]
                    for _ in range(8)]
        for value in ("a", "b", "c"):
            chosen = set(targets("--client-service", "web", "--header", f"x-header={value}"))
            check(len(chosen) == 1, f"picks from web with x-header={value} go to one target ({chosen})")
        # From another service (or none): backend's own LeastRequest.
        for flags in (["--client-service", "api"], []):
            chosen = set(targets(*flags, "--header", "x-header=a"))
            check(len(chosen) > 1, f"picks {flags} with one x-header spread ({chosen})")
        expect(["explain", "backend", "--client-service", "web", "--header", "x-header=a"], 0,
               r"upstream backend \(ring_hash\)\n  client_configs\[0\] applies")
        expect(["explain", "backend", "--client-service", "web", "-o", "json"], 0,
               r'"clientConfig": 0')
        expect(["explain", "backend", "--client-service", "api"], 0, r"upstream backend \(least_request\)\n  request")
        # The same example in Universal form, with the other kinds of the
        # matrix beside it: each set of callers gets its configuration.
        with open(mesh, "w") as f:
            f.write(MESH_UPSTREAMS + """---
type: MeshLoadBalancingStrategy
name: ring-hash
mesh: default
""" + PAGE_SPEC + """---
type: MeshLoadBalancingStrategy
name: canaries
spec:
  targetRef: {kind: MeshSubset, tags: {version: v2}}
  to: [{targetRef: {kind: Mesh}, default: {loadBalancer: {type: Maglev}}}]
---
type: MeshLoadBalancingStrategy
name: web-canaries
spec:
  targetRef: {kind: MeshServiceSubset, name: web, tags: {version: v2}}
  to: [{targetRef: {kind: MeshService, name: backend}, default: {loadBalancer: {type: Random}}}]
""")
        expect(["apply", mesh], 0, r"updated upstream backend")
        for value in ("a", "b"):
            chosen = set(targets("--client-service", "web", "--header", f"x-header={value}"))
            check(len(chosen) == 1, f"Universal form: picks from web with x-header={value} go to one target")
        for flags, strategy in ((["--client-service", "web"], "ring_hash"),
                                (["--client-tag", "version=v2"], "maglev"),
                                (["--client-service", "web", "--client-tag", "version=v2"], "random"),
                                (["--client-service", "api", "--client-tag", "version=v1"], "round_robin")):
            expect(["explain", "backend", *flags], 0, rf"upstream backend \({strategy}\)")
        expect(["explain", "other", "--client-tag", "version=v2"], 0, r"upstream other \(maglev\)")
        # The gRPC Admin API edits them: an update of client_configs alone.
        expect(["update", "backend", "--json", '{"clientConfigs":[]}', "--mask", "client_configs"], 0)
        expect(["explain", "backend", "--client-service", "web"], 0, r"upstream backend \(round_robin\)")
        with open(mesh, "a") as f:
            f.write("---\ntype: MeshLoadBalancingStrategy\nname: from-east\nspec:\n"
                    "  targetRef: {kind: MeshSubset}\n  to: []\n")
        expect(["apply", mesh], 3, r"mesh\.yaml:42: spec\.targetRef\.tags: must be a non-empty mapping")
        expect(["delete", "backend"], 0)
        expect(["delete", "other"], 0)

        # SIGHUP: --config is read again and applied as at start.
        with open(config, "w") as f:
            f.write("upstreams:\n- name: declared\n  loadBalancer: {type: Random}\n  targets:\n"
                    "  - {target: '10.9.0.1:80'}\n  - {target: '10.9.0.2:80'}\n")
        server.proc.send_signal(signal.SIGHUP)
        check(server.wait_log(r"SIGHUP: applied 1 upstreams"), "SIGHUP applies a good --config")
        expect(["targets", "declared"], 0, r"10\.9\.0\.2:80")
        expect(["get", "declared"], 0, r"loadBalancer\.random")
        with open(config, "w") as f:
            f.write("upstreams:\n- name: declared\n  loadBalancer: {type: Maglev, maglev: {tableSize: 8}}\n")
        server.proc.send_signal(signal.SIGHUP)
        check(server.wait_log(r"SIGHUP: bad --config, nothing changed: .*picker\.yaml:3: "
                              r"upstreams\[0\]\.loadBalancer\.maglev\.tableSize: must be a prime"),
              "SIGHUP logs a bad --config with its file, line and field")
        expect(["get", "declared"], 0, r"loadBalancer\.random")
        expect(["targets", "declared"], 0, r"10\.9\.0\.2:80")
        check(server.proc.poll() is None, "the server still serves after a bad SIGHUP")
        mutual_tls(tmp, expect)
    finally:
        code = server.stop()
        check(code == 0, f"SIGTERM drains and exits 0 (got {code})")
        subprocess.run(["rm", "-rf", tmp])
    if failures:
        print("".join(server.log[-40:]))
        print(f"{len(failures)} check(s) failed")
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
