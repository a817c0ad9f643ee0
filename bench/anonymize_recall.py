"""Recall and false positives of the anonymizer on a labelled corpus, on its own:

    python -m bench.anonymize_recall [--corpus bench/pii_corpus.jsonl] [--json] [--verbose]

Not part of `python -m bench`: it measures gateway/anonymize, not the proxy (its cost per row:
`python -m bench.anonymize_cost`).

The corpus is JSON lines `{"text": ..., "pii": [{"kind", "value"}...], "keep": [...]}`. `pii`
lists every personal value, once per mention ("Per Hansen" then "Per" is two entries), with
kinds that need not have a rule (`address`, `bank_account` have none: they count as misses).
`keep` lists look-alikes that must come out unchanged (L4-L5, 500 mg, v2.3.1...).

How a line is scored, per kind, using only the public `redact()` (text and counts):
- a labelled value is *found* when its exact string no longer appears in the output, no word
  of it (3+ characters) survives that was not already elsewhere in the line, and the output
  has a placeholder of its kind for it: found = min(values of the kind fully gone, placeholders
  of the kind). A value cut in half ("Pasient: [PERSON_1] bin Rashid") is a miss; so is a phone
  number redacted as an IP (it is gone, but the kind is wrong).
- *false positives* are placeholders of a kind beyond the labelled values of that kind they
  fell on, on negative and positive lines alike: "I'm [PERSON_1]" for "I'm Norwegian" is one,
  the placeholder in the cut name above is not (the miss already counts it).
- a look-alike is *kept* when it appears as often in the output as in the input.
Recall = found / labelled; precision = (placeholders - false positives) / placeholders.
Counts cannot say which placeholder is which, so two errors on one line can cancel: a phone
redacted as an IP next to an order number redacted as a phone reads as one phone found and one
IP false positive. The `keep` lists (the order number mangled) and `--verbose` show such lines.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from gateway.anonymize import Anonymizer

DEFAULT_CORPUS = Path(__file__).with_name("pii_corpus.jsonl")


@dataclass(frozen=True)
class Labelled:
    kind: str
    value: str


@dataclass(frozen=True)
class Example:
    text: str
    pii: tuple[Labelled, ...]
    keep: tuple[Labelled, ...] = ()


@dataclass
class KindScore:
    labelled: int = 0
    found: int = 0
    placeholders: int = 0
    false_positives: int = 0

    @property
    def recall(self) -> float | None:
        return self.found / self.labelled if self.labelled else None

    @property
    def precision(self) -> float | None:
        if not self.placeholders:
            return None
        return (self.placeholders - self.false_positives) / self.placeholders


@dataclass(frozen=True)
class Finding:
    """A missed value, a false positive, or a mangled look-alike, with the line it is from."""

    kind: str
    value: str  # the missed value or look-alike; "+N" extra placeholders for a false positive
    text: str
    redacted: str
    note: str = ""


@dataclass
class Score:
    kinds: dict[str, KindScore] = field(default_factory=dict)
    lookalikes: dict[str, list[int]] = field(default_factory=dict)  # kind -> [kept, total]
    misses: list[Finding] = field(default_factory=list)
    false_positives: list[Finding] = field(default_factory=list)
    mangled: list[Finding] = field(default_factory=list)
    lines: int = 0
    negative_lines: int = 0
    negative_lines_touched: int = 0

    @property
    def total(self) -> KindScore:
        return KindScore(
            labelled=sum(k.labelled for k in self.kinds.values()),
            found=sum(k.found for k in self.kinds.values()),
            placeholders=sum(k.placeholders for k in self.kinds.values()),
            false_positives=sum(k.false_positives for k in self.kinds.values()),
        )


def load_corpus(path: Path) -> list[Example]:
    examples = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        examples.append(
            Example(
                text=row["text"],
                pii=tuple(Labelled(p["kind"], p["value"]) for p in row["pii"]),
                keep=tuple(Labelled(p["kind"], p["value"]) for p in row.get("keep", ())),
            )
        )
    return examples


def occurrences(value: str, text: str) -> int:
    """How often `value` appears in `text` as a whole ("Per" not inside "Persistent")."""
    return len(re.findall(rf"(?<!\w){re.escape(value)}(?!\w)", text))


def _no_word_left(value: str, redacted: str, background: str) -> bool:
    """No word of `value` is in the output more often than in the rest of the line."""
    words = re.findall(r"\w{3,}", value)
    return all(occurrences(w, redacted) <= occurrences(w, background) for w in words)


def score(examples: Iterable[Example], anonymizer: Anonymizer | None = None) -> Score:
    anonymizer = anonymizer or Anonymizer()
    result = Score()
    for example in examples:
        out = anonymizer.redact(example.text)
        _score_line(example, out.text, out.counts, result)
    return result


def _score_line(example: Example, redacted: str, counts: Counter[str], result: Score) -> None:
    result.lines += 1
    if not example.pii:
        result.negative_lines += 1
        result.negative_lines_touched += bool(counts)
    background = example.text
    for item in example.pii:
        background = re.sub(rf"(?<!\w){re.escape(item.value)}(?!\w)", " ", background)
    labelled: Counter[str] = Counter()
    full: dict[str, list[str]] = {}
    touched: Counter[str] = Counter()  # fully redacted, or cut: a placeholder is on it
    for item in example.pii:
        labelled[item.kind] += 1
        if occurrences(item.value, redacted):
            result.misses.append(Finding(item.kind, item.value, example.text, redacted))
            continue
        touched[item.kind] += 1
        if _no_word_left(item.value, redacted, background):
            full.setdefault(item.kind, []).append(item.value)
        else:
            result.misses.append(Finding(item.kind, item.value, example.text, redacted, "partly"))
    for kind in labelled.keys() | counts.keys():
        found = min(len(full.get(kind, ())), counts[kind])
        tally = result.kinds.setdefault(kind, KindScore())
        tally.labelled += labelled[kind]
        tally.found += found
        tally.placeholders += counts[kind]
        # A placeholder that cut a labelled value of its kind is a miss, not a false positive.
        wrong = counts[kind] - min(touched[kind], counts[kind])
        tally.false_positives += wrong
        if wrong:
            result.false_positives.append(Finding(kind, f"+{wrong}", example.text, redacted))
        if len(full.get(kind, ())) > found:
            values = " / ".join(full[kind])
            note = "gone, but not under its own kind's placeholder"
            result.misses.append(Finding(kind, values, example.text, redacted, note))
    _score_lookalikes(example, redacted, result)


def _score_lookalikes(example: Example, redacted: str, result: Score) -> None:
    for item in example.keep:
        tally = result.lookalikes.setdefault(item.kind, [0, 0])
        tally[1] += 1
        if occurrences(item.value, redacted) == occurrences(item.value, example.text):
            tally[0] += 1
        else:
            result.mangled.append(Finding(item.kind, item.value, example.text, redacted))


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def format_table(result: Score) -> str:
    header = (
        f"{'kind':<16}{'labelled':>9}{'found':>7}{'recall':>9}{'false pos':>11}{'precision':>11}"
    )
    rows = [header, "-" * len(header)]
    totals = [(kind, result.kinds[kind]) for kind in sorted(result.kinds)]
    for kind, k in [*totals, ("overall", result.total)]:
        if kind == "overall":
            rows.append("-" * len(header))
        rows.append(
            f"{kind:<16}{k.labelled:>9}{k.found:>7}{_pct(k.recall):>9}"
            f"{k.false_positives:>11}{_pct(k.precision):>11}"
        )
    rows.append("")
    rows.append(
        f"lines {result.lines}, negative lines {result.negative_lines}, "
        f"negative lines with any redaction {result.negative_lines_touched}"
    )
    rows.append("")
    rows.append(f"{'look-alike':<16}{'kept':>6}{'total':>7}")
    for kind in sorted(result.lookalikes):
        kept, total = result.lookalikes[kind]
        rows.append(f"{kind:<16}{kept:>6}{total:>7}")
    return "\n".join(rows)


def format_findings(result: Score) -> str:
    sections = [
        ("missed", result.misses),
        ("false positives", result.false_positives),
        ("mangled look-alikes", result.mangled),
    ]
    rows = []
    for title, findings in sections:
        rows.append(f"\n{title} ({len(findings)}):")
        for f in findings:
            note = f" ({f.note})" if f.note else ""
            rows.append(f"  {f.kind:<16}{f.value!r:<40} {f.redacted}{note}")
    return "\n".join(rows)


def as_json(result: Score) -> dict[str, object]:
    def kind_row(k: KindScore) -> dict[str, object]:
        return {
            **asdict(k),
            "false_positives": k.false_positives,
            "recall": k.recall,
            "precision": k.precision,
        }

    return {
        "kinds": {kind: kind_row(k) for kind, k in sorted(result.kinds.items())},
        "overall": kind_row(result.total),
        "lines": result.lines,
        "negative_lines": result.negative_lines,
        "negative_lines_touched": result.negative_lines_touched,
        "lookalikes": {k: {"kept": v[0], "total": v[1]} for k, v in result.lookalikes.items()},
        "misses": [asdict(f) for f in result.misses],
        "false_positives": [asdict(f) for f in result.false_positives],
        "mangled": [asdict(f) for f in result.mangled],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--json", action="store_true", help="print the scores as JSON")
    parser.add_argument("--verbose", action="store_true", help="list misses and false positives")
    args = parser.parse_args(argv)
    result = score(load_corpus(args.corpus))
    if args.json:
        print(json.dumps(as_json(result), indent=2, ensure_ascii=False))
        return 0
    print(f"corpus: {args.corpus}")
    print(format_table(result))
    if args.verbose:
        print(format_findings(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
