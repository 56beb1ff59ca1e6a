#!/usr/bin/python3
"""Checks deploy/prometheus/alerts.yml with Prometheus' promtool.

  alerts_test.py check   promtool check rules, and every alert has a severity
                         label, a summary and a description
  alerts_test.py test    promtool test rules deploy/prometheus/alerts_test.yml,
                         then, for each alert, copies whose expression never
                         fires, or fires for every input series (with the
                         alert's labels), must fail those tests: so each
                         alert's firing and quiet cases are really asserted

Environment: PICKER_SOURCE_DIR (repository root; ctest sets it). Tools:
promtool (Debian package prometheus), python3-yaml.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import List

SOURCE = Path(os.environ.get("PICKER_SOURCE_DIR") or Path(__file__).resolve().parents[2])
RULES_DIR = SOURCE / "deploy" / "prometheus"
ALERTS = ["PickerNoPickableTarget", "PickerUpstreamPanic", "PickerHighUnhealthyShare",
          "PickerLeasesExpiring", "PickerPickErrors", "PickerAdminWriteFailures"]


def die(message: str) -> None:
    print("FAIL: " + message, file=sys.stderr)
    sys.exit(1)


try:
    import yaml
except ImportError:
    die("python3 cannot import yaml: run scripts/install-deps.sh (Debian package python3-yaml)")
PROMTOOL = shutil.which("promtool") or die(
    "promtool not found on PATH: run scripts/install-deps.sh (Debian package prometheus)")


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60)


def rules() -> List[dict]:
    with open(RULES_DIR / "alerts.yml") as f:
        return [r for g in yaml.safe_load(f)["groups"] for r in g["rules"]]


def check() -> None:
    result = promtool("check", "rules", str(RULES_DIR / "alerts.yml"))
    print(result.stdout + result.stderr)
    if result.returncode != 0:
        die("promtool check rules refused deploy/prometheus/alerts.yml")
    names = [r.get("alert") for r in rules()]
    if sorted(names) != sorted(ALERTS):
        die("alerts.yml has alerts %s, expected %s" % (names, ALERTS))
    for rule in rules():
        if rule.get("labels", {}).get("severity") not in ("warning", "critical"):
            die("%s: no severity label (warning or critical)" % rule["alert"])
        for key in ("summary", "description"):
            if not rule.get("annotations", {}).get(key):
                die("%s: no %s annotation" % (rule["alert"], key))
    print("PASS: %d alerts" % len(names))


def everything(alert: str) -> str:
    """An expression that fires for every series of the alert's input with
    the alert's own labels: a quiet case left unasserted would pass it."""
    expr = next(r["expr"] for r in rules() if r.get("alert") == alert)
    if "picker_admin_operations_total" in expr:
        return "group by (method, code) (picker_admin_operations_total)"
    return 'group by (upstream) ({__name__=~"picker_.+"})'


def test_mutated(work: Path, alert: str, expr: str) -> bool:
    """True if the unit tests fail with `alert`'s expression replaced."""
    with open(RULES_DIR / "alerts.yml") as f:
        doc = yaml.safe_load(f)
    for group in doc["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == alert:
                rule["expr"] = expr
    with open(work / "alerts.yml", "w") as f:
        yaml.safe_dump(doc, f)
    return promtool("test", "rules", str(work / "alerts_test.yml")).returncode != 0


def test() -> None:
    result = promtool("test", "rules", str(RULES_DIR / "alerts_test.yml"))
    print(result.stdout + result.stderr)
    if result.returncode != 0:
        die("promtool test rules: alerts_test.yml fails (above)")
    work = Path(tempfile.mkdtemp(prefix="picker-alerts-"))
    try:
        shutil.copy(RULES_DIR / "alerts_test.yml", work)
        for alert in ALERTS:
            for what, expr in (("never fires", "vector(1) > 2"), ("fires for everything", everything(alert))):
                if not test_mutated(work, alert, expr):
                    die("alerts_test.yml still passes when %s %s: its cases prove nothing" % (alert, what))
            print("ok: the tests catch %s never firing and firing for everything" % alert)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("PASS")


if __name__ == "__main__":
    modes = {"check": check, "test": test}
    if len(sys.argv) != 2 or sys.argv[1] not in modes:
        die("usage: alerts_test.py check|test")
    modes[sys.argv[1]]()
