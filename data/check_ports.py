#!/usr/bin/env python3
"""Validate data/ports.tsv (and tests/data/seed_trojan_ports.txt against it).

Usage: python3 data/check_ports.py [ports.tsv [seed_trojan_ports.txt]]
Exits 0 when both files are well formed, 1 otherwise (errors on stderr).
Standard library only; see data/README.md for the format.
"""
import os
import re
import sys

HEADER = ["proto", "port", "service", "category", "names", "advice", "sources", "correction"]
PROTOS = {"tcp", "udp"}
CATEGORIES = {"trojan", "risky", "proxy", "service"}
SERVICE_RE = re.compile(r"^(-|[a-z0-9][a-z0-9*+._-]*)$")
PORT_RE = re.compile(r"^(\d{1,5})(?:-(\d{1,5}))?$")
SOURCE_RE = re.compile(r"^(seed:\d{3}|iana|other:[^,]+)$")

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_TSV = os.path.join(HERE, "ports.tsv")
DEFAULT_TROJANS = os.path.join(HERE, "..", "tests", "data", "seed_trojan_ports.txt")


def parse_port(text):
    m = PORT_RE.match(text)
    if not m:
        return None
    lo = int(m.group(1))
    hi = int(m.group(2)) if m.group(2) is not None else lo
    if text != text.strip() or lo > hi or hi > 65535:
        return None
    return lo, hi


def check_tsv(path, errors):
    """Return {(proto, lo, hi): names} for the rows of a valid table."""
    rows = {}
    spans = {p: [] for p in PROTOS}
    header_seen = False
    with open(path, encoding="utf-8") as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.rstrip("\n")
            if line.endswith("\r"):
                errors.append(f"{path}:{lineno}: CR line ending")
                line = line[:-1]
            if line.startswith("#"):
                continue
            if not line.strip():
                errors.append(f"{path}:{lineno}: blank line")
                continue
            cols = line.split("\t")
            if not header_seen:
                header_seen = True
                if cols != HEADER:
                    errors.append(f"{path}:{lineno}: header must be {' '.join(HEADER)!r} (tab-separated)")
                continue
            where = f"{path}:{lineno}"
            if len(cols) != 8:
                errors.append(f"{where}: {len(cols)} columns, expected 8")
                continue
            proto, port, service, category, names, advice, sources, correction = cols
            for name, value in zip(HEADER, cols):
                if value == "" or value != value.strip():
                    errors.append(f"{where}: column {name} is empty or has surrounding spaces (use '-')")
            if proto not in PROTOS:
                errors.append(f"{where}: bad proto {proto!r}")
            span = parse_port(port)
            if span is None:
                errors.append(f"{where}: bad port {port!r} (0-65535 or N-M)")
            if not SERVICE_RE.match(service):
                errors.append(f"{where}: bad service keyword {service!r}")
            if category not in CATEGORIES:
                errors.append(f"{where}: bad category {category!r}")
            if names != "-" and any(n.strip() != n or not n for n in names.split("|")):
                errors.append(f"{where}: malformed names list {names!r}")
            srcs = sources.split(",")
            if not all(SOURCE_RE.match(s) for s in srcs):
                errors.append(f"{where}: bad sources {sources!r}")
            elif not any(s.startswith(("seed:", "other:")) for s in srcs):
                errors.append(f"{where}: sources name no seed and no other: origin")
            if proto in PROTOS and span is not None:
                spans[proto].append((span[0], span[1], lineno))
                rows[(proto, span[0], span[1])] = names.split("|")
    if not header_seen:
        errors.append(f"{path}: no header line")
    for proto, items in spans.items():
        items.sort()
        for (alo, ahi, aline), (blo, bhi, bline) in zip(items, items[1:]):
            if blo <= ahi:
                errors.append(f"{path}: {proto} rows at lines {aline} and {bline} overlap")
    return rows


def check_trojans(path, rows, errors):
    count = 0
    with open(path, encoding="utf-8") as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.rstrip("\n")
            if not line.strip() or line.startswith("#"):
                continue
            parts = line.split(" ", 2)
            where = f"{path}:{lineno}"
            if len(parts) != 3 or parts[0] not in PROTOS or not parts[1].isdigit() or not parts[2].strip():
                errors.append(f"{where}: expected '<tcp|udp> <port> <name>'")
                continue
            proto, port, name = parts[0], int(parts[1]), parts[2]
            hits = [names for (p, lo, hi), names in rows.items() if p == proto and lo <= port <= hi]
            if not hits:
                errors.append(f"{where}: {proto}/{port} is not in the table")
            elif name not in hits[0]:
                errors.append(f"{where}: {proto}/{port} row does not list {name!r}")
            count += 1
    return count


def main(argv):
    tsv = argv[1] if len(argv) > 1 else DEFAULT_TSV
    trojans = argv[2] if len(argv) > 2 else DEFAULT_TROJANS
    errors = []
    rows = check_tsv(tsv, errors)
    n_trojans = check_trojans(trojans, rows, errors) if os.path.exists(trojans) else 0
    for e in errors:
        print(e, file=sys.stderr)
    print(f"{len(rows)} rows, {n_trojans} trojan test lines, {len(errors)} errors")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
