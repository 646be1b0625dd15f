#!/usr/bin/env python3
"""The kind of keyword triage many chatbots use, for comparison with ieum's engine.

pyahocorasick over the same literal patterns as ieum's rules (every `patterns` entry of
escalation-rules.toml, and the English `words`), with simple normalization (NFKC,
lowercase, whitespace and punctuation removed), the message level as the highest level of
any rule that matched, and one JSON line out per message. No regexes, no negation or
idiom handling, no spans back into the original text, no intents: it does much less than
`ieum triage`, which is the point of the comparison (what does the extra work cost?).

    python3 benches/python/keyword_triage.py --rules escalation-rules.toml < lines.txt > out.jsonl
    python3 benches/python/keyword_triage.py --rules escalation-rules.toml --bench lines.txt

`--bench FILE` times the pipeline in-process (no I/O) over every line of FILE, repeated
`--repeat` times, and prints ns per message.
"""

import argparse
import json
import sys
import time
import tomllib
import unicodedata

import ahocorasick

LEVELS = ["none", "low", "medium", "high", "imminent"]


def normalize(text: str) -> str:
    t = unicodedata.normalize("NFKC", text).lower()
    return "".join(ch for ch in t if ch.isalnum())


def build(rules_path: str):
    with open(rules_path, "rb") as f:
        rules = tomllib.load(f)
    automaton = ahocorasick.Automaton()
    n = 0
    for rule in rules.get("rule", []):
        level = LEVELS.index(rule["level"])
        for p in rule.get("patterns", []) + rule.get("words", []):
            key = normalize(p)
            if not key:
                continue
            old = automaton.get(key, None)
            entry = (level, rule["id"])
            if old is None or old[0] < level:
                automaton.add_word(key, entry)
                n += 1
    automaton.make_automaton()
    return automaton, n


def triage(automaton, text: str) -> str:
    compact = normalize(text)
    level = 0
    hits = []
    for _end, (lvl, rule_id) in automaton.iter(compact):
        level = max(level, lvl)
        hits.append(rule_id)
    return json.dumps(
        {"text": text, "risk": LEVELS[level], "rules": sorted(set(hits))},
        ensure_ascii=False,
    )


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rules", default="escalation-rules.toml")
    ap.add_argument("--bench")
    ap.add_argument("--repeat", type=int, default=1000)
    args = ap.parse_args()
    automaton, n = build(args.rules)
    if args.bench:
        with open(args.bench, encoding="utf-8") as f:
            lines = [l.rstrip("\n") for l in f if l.strip()]
        for line in lines:  # warm up
            triage(automaton, line)
        best = None
        for _ in range(3):
            t = time.perf_counter()
            for _ in range(args.repeat):
                for line in lines:
                    triage(automaton, line)
            dt = time.perf_counter() - t
            best = dt if best is None else min(best, dt)
        per = best / (args.repeat * len(lines)) * 1e9
        print(json.dumps({"patterns": n, "messages": args.repeat * len(lines), "ns_per_message": round(per)}))
        return 0
    out = sys.stdout
    for line in sys.stdin:
        out.write(triage(automaton, line.rstrip("\n")) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
