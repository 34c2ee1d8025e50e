#!/usr/bin/env python3
"""Names addresses in a guest's compiled code after its guest functions.

Used by scripts/profile.sh. The wasmtime engine maps compiled guest code
from its cache file (.cwasm), an ELF relocatable object whose .symtab names
each function "wasm[0]::function[N]::NAME", at section-relative addresses:
an address in such a mapping is a file offset (address - start + mapping
offset), and the file offset minus .text's file offset is the symbol's.

  profile_resolve.py perf MAPS SAMPLES TOP
      SAMPLES: `perf script -F ip,sym,dso` lines; prints shares by part,
      by Go package and by function.
  profile_resolve.py callgrind MAPS OUT1 OUT2 TOP "N1 N2"
      OUT1, OUT2: callgrind dumps of windows of N1 and N2 requests; prints
      instructions per request by guest function ((I2 - I1) / (N2 - N1)).
"""
import bisect
import collections
import re
import subprocess
import sys


def cwasm_maps(maps_path):
    """Executable mappings of .cwasm files: (start, end, offset, path)."""
    out = []
    with open(maps_path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 6 and parts[5].endswith(".cwasm") and "x" in parts[1]:
                start, end = (int(x, 16) for x in parts[0].split("-"))
                out.append((start, end, int(parts[2], 16), parts[5]))
    return out


class Symbols:
    """The function symbols of one .cwasm file."""

    def __init__(self, path):
        text_off = None
        for line in subprocess.run(["readelf", "-SW", path], capture_output=True, text=True).stdout.splitlines():
            m = re.search(r"\]\s+\.text\s+\S+\s+[0-9a-f]+\s+([0-9a-f]+)", line)
            if m:
                text_off = int(m.group(1), 16)
        self.text_off = text_off or 0
        self.addrs, self.names = [], []
        nm = subprocess.run(["nm", "-n", "--defined-only", path], capture_output=True, text=True).stdout
        for line in nm.splitlines():
            parts = line.split(" ", 2)
            if len(parts) == 3 and parts[1] in "tT":
                self.addrs.append(int(parts[0], 16))
                name = parts[2]
                m = re.match(r"wasm\[\d+\]::function\[\d+\]::(.*)", name)
                self.names.append(m.group(1) if m else name)

    def name(self, file_off):
        i = bisect.bisect_right(self.addrs, file_off - self.text_off) - 1
        return self.names[i] if i >= 0 else "?"


class Resolver:
    def __init__(self, maps_path):
        self.maps = cwasm_maps(maps_path)
        self.syms = {}

    def guest(self, addr):
        """The guest function at addr, or None outside compiled guest code."""
        for start, end, off, path in self.maps:
            if start <= addr < end:
                if path not in self.syms:
                    self.syms[path] = Symbols(path)
                return self.syms[path].name(addr - start + off)
        return None


def package(fn):
    """The Go package of a guest function name: wasm symbol names spell
    a package path with "_" for "/" and ".", so it ends at the first dot
    (net_http.(*conn).serve: net_http)."""
    m = re.match(r"((?:[a-z0-9-]+\.(?:com|org|net|io|dev|in)_)?[^.]*)\.", fn)
    return m.group(1) if m else fn


def table(title, counts, total, top, unit):
    print(f"{title}:\n")
    print(f"| {unit} | share | name |")
    print("|--:|--:|---|")
    for name, n in counts.most_common(top):
        print(f"| {n:,.0f} | {100 * n / total:.1f} % | `{name}` |")
    print()


def perf(maps_path, samples_path, top):
    r = Resolver(maps_path)
    parts, pkgs, fns, host = (collections.Counter() for _ in range(4))
    total = 0
    with open(samples_path) as f:
        for line in f:
            m = re.match(r"\s*([0-9a-f]+)\s+(.*?)\s+\((.*)\)\s*$", line)
            if not m:
                continue
            addr, sym, dso = int(m.group(1), 16), m.group(2), m.group(3)
            total += 1
            g = r.guest(addr)
            if g is not None:
                parts["guest (compiled wasm)"] += 1
                fns[g] += 1
                pkgs[package(g)] += 1
            elif dso.startswith("[kernel"):
                parts["kernel"] += 1
                host[f"[kernel] {sym}"] += 1
            else:
                parts["host (engine, hostsock, Go runtime)"] += 1
                host[sym if sym != "[unknown]" else f"[unknown] {dso}"] += 1
    if total == 0:
        print("no samples")
        return
    if not r.maps:
        print("no .cwasm mapping in the server: its compiled code has no symbols (engine other than wasmtime?)\n")
    table(f"samples by part ({total} samples)", parts, total, top, "samples")
    table("guest samples by Go package", pkgs, total, top, "samples")
    table("guest samples by function", fns, total, top, "samples")
    table("host samples by function", host, total, top, "samples")


def callgrind_costs(path, r):
    """Self instructions by guest function (or 'host') of one dump."""
    names, costs = {}, collections.Counter()
    fn, skip = None, False
    with open(path) as f:
        for line in f:
            if line.startswith("fn="):
                m = re.match(r"fn=\((\d+)\)(?: (.*))?", line.strip())
                if m:
                    if m.group(2):
                        names[m.group(1)] = m.group(2)
                    fn = names.get(m.group(1), "?")
                else:
                    fn = line[3:].strip()
                continue
            if line.startswith("cfn="):
                m = re.match(r"cfn=\((\d+)\) (.*)", line.strip())
                if m:
                    names[m.group(1)] = m.group(2)
                continue
            if line.startswith("calls="):
                skip = True
                continue
            if line[:1].isdigit() or line[:1] in "+-*":
                if skip:
                    skip = False
                    continue
                v = line.split()
                if len(v) < 2:
                    continue
                key = "host"
                if fn.startswith("0x"):
                    key = r.guest(int(fn.split("'")[0], 16)) or "guest (unresolved)"
                costs[key] += int(v[1])
    return costs


def callgrind(maps_path, out1, out2, top, windows):
    n1, n2 = (int(x) for x in windows.split())
    r = Resolver(maps_path)
    c1, c2 = callgrind_costs(out1, r), callgrind_costs(out2, r)
    per = collections.Counter({k: (c2[k] - c1.get(k, 0)) / (n2 - n1) for k in c2})
    total = sum(per.values())
    guest = total - per.get("host", 0)
    print(f"total {total:,.0f} instructions per request, compiled guest code {guest:,.0f}\n")
    pkgs = collections.Counter()
    for k, v in per.items():
        if k != "host":
            pkgs[package(k)] += v
    table("guest instructions per request by Go package", pkgs, total, top, "instructions")
    del per["host"]
    table("guest instructions per request by function", per, total, top, "instructions")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "perf":
        perf(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif len(sys.argv) == 7 and sys.argv[1] == "callgrind":
        callgrind(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6])
    else:
        sys.exit(__doc__)
