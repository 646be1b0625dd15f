#!/usr/bin/env python3
"""Scores a corpus with any `ieum` binary's `triage` command (one JSON object per line,
`risk` as the contract says), with the same figures as `ieum eval`. Used to measure an
older build that has no `eval` command:

    scripts/eval-binary.py BIN [--rules FILE] DIR|FILE...

(--rules: the rules file that build reads, e.g. `git show 8a04320:escalation-rules.toml`)."""
import json, os, subprocess, sys

LEVELS = ["none", "low", "medium", "high", "imminent"]
METRICS = [
    ("high_recall", lambda g: g >= 3, lambda s: s >= 3),
    ("imminent_recall", lambda g: g == 4, lambda s: s == 4),
    ("medium_recall", lambda g: g == 2, lambda s: s >= 2),
    ("low_recall", lambda g: g == 1, lambda s: s >= 1),
    ("risk_missed", lambda g: g >= 2, lambda s: s == 0),
    ("none_false_alarm", lambda g: g == 0, lambda s: s >= 2),
    ("none_high_alarm", lambda g: g == 0, lambda s: s >= 3),
    ("low_high_alarm", lambda g: g == 1, lambda s: s >= 3),
]

def load(paths):
    files = []
    for p in paths:
        if os.path.isdir(p):
            files += sorted(os.path.join(p, f) for f in os.listdir(p) if f.endswith(".tsv"))
        else:
            files.append(p)
    out = []
    for f in files:
        rows = []
        for line in open(f, encoding="utf-8"):
            line = line.rstrip("\n")
            if not line.strip() or line.startswith("#"):
                continue
            label, text = line.split("\t", 1)
            rows.append((LEVELS.index(label.strip()), text))
        out.append((os.path.basename(os.path.dirname(f)) + "/" + os.path.basename(f)[:-4], rows))
    return out

def main():
    binary, paths = sys.argv[1], sys.argv[2:]
    extra = []
    if paths[:1] == ["--rules"]:
        extra, paths = ["--rules", paths[1]], paths[2:]
    classes = load(paths)
    texts = [t for _, rows in classes for _, t in rows]
    res = subprocess.run([binary, "triage"] + extra, input="\n".join(texts) + "\n", capture_output=True, text=True, check=True)
    scores = [LEVELS.index(json.loads(l)["risk"]) for l in res.stdout.splitlines()]
    assert len(scores) == len(texts), (len(scores), len(texts))
    i = 0
    allpairs = []
    print("%-30s %5s" % ("class", "lines") + "".join(" %8s" % m[0][:8] for m in METRICS))
    for name, rows in classes:
        pairs = []
        for g, _ in rows:
            pairs.append((g, scores[i])); i += 1
        allpairs += pairs
        report(name, pairs)
    report("all", allpairs)

def report(name, pairs):
    cells = []
    for _, gf, sf in METRICS:
        of = [s for g, s in pairs if gf(g)]
        cells.append(" %8s" % ("%.3f" % (sum(1 for s in of if sf(s)) / len(of)) if of else "-"))
    print("%-30s %5d" % (name, len(pairs)) + "".join(cells))

main()
