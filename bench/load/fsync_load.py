#!/usr/bin/env python3
"""Writes records the way picker's file store does, at a fixed rate, from a
process of its own: write a temporary file, fsync it, rename it over the
record, fsync the directory.

BENCHMARKS.md runs it next to picker-bench (with picker's own store on
tmpfs) to measure what another process's fsyncs alone cost picks on this
machine, apart from anything picker does.

  bench/load/fsync_load.py DIR --per-sec 100 --seconds 40
"""
import argparse
import os
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", help="directory to write in (created; on the disk to measure)")
    parser.add_argument("--per-sec", type=float, default=100.0, help="records written per second")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long to run")
    parser.add_argument("--bytes", type=int, default=6000, help="record size (a 100-target upstream)")
    args = parser.parse_args()

    os.makedirs(args.dir, exist_ok=True)
    data = os.urandom(args.bytes)
    record = os.path.join(args.dir, "u-load.rec")
    tmp = record + ".tmp"
    start = time.monotonic()
    due = start
    written = 0
    while time.monotonic() - start < args.seconds:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, record)
        dir_fd = os.open(args.dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        written += 1
        due += 1.0 / args.per_sec
        time.sleep(max(0.0, due - time.monotonic()))
    print(f"fsync_load: {written / (time.monotonic() - start):.1f} records/s")


if __name__ == "__main__":
    main()
