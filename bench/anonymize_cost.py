"""What redaction costs per row, on its own:

    .venv/bin/python -m bench.anonymize_cost [--rows 2000] [--prompt-lines 5] [--rules]
        [--baseline OLD_ANONYMIZE.PY]

Not part of `python -m bench`: it measures gateway/anonymize, not the proxy. A row is what the
exporter (exporters/privacy.py) and capture redaction hand the Anonymizer for one interaction:
a prompt and an answer, each a few lines drawn from bench/pii_corpus.jsonl (clinical notes,
tickets, code talk, with and without personal data), redacted with one pseudonym table.
`--prompt-lines 220` makes each prompt ~10 KB of such text.

`--baseline` times another version of the module the same way (for before/after: save the
old file with `git show HEAD:gateway/anonymize.py > /tmp/anonymize_head.py`). The figure is the
median of five passes over the same rows, in CPU microseconds per row (one core).

Also printed: the same engine without the Hyperscan pre-filter (gateway/anonymize/prefilter.py),
without that and the rules' pre-checks (issue 21), and with an export's span cache
(`exporters.privacy.CACHE_TEXTS`) once every text has been seen (a repeated system prompt,
few-shot block or tool schema). `--rules` prints what each rule costs per row with
plain `re`, with the Scanner, and with the Scanner behind its pre-check, and what the name
finder costs.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.anonymize_recall import DEFAULT_CORPUS, load_corpus

PASSES = 5


def make_rows(count: int, seed: int = 17, prompt_lines: int = 5) -> list[tuple[str, str]]:
    """(prompt, answer) pairs: `prompt_lines` corpus lines as the prompt, three as the answer."""
    texts = [example.text for example in load_corpus(DEFAULT_CORPUS)]
    rng = random.Random(seed)
    return [
        ("\n".join(rng.sample(texts, prompt_lines)), "\n".join(rng.sample(texts, 3)))
        for _ in range(count)
    ]


def per_row_microseconds(anonymizer: Any, rows: list[tuple[str, str]]) -> float:
    def one_pass() -> float:
        # CPU time, not wall time: the machine is shared, and waiting for a core is not cost.
        started = time.process_time()
        for prompt, answer in rows:
            people: dict[str, int] = {}
            anonymizer.redact(prompt, people)
            anonymizer.redact(answer, people)
        return (time.process_time() - started) / len(rows) * 1e6

    one_pass()  # warm the regex cache and the name lists
    return statistics.median(one_pass() for _ in range(PASSES))


def without_prefilter(anonymizer: Any) -> Any:
    """Each rule behind its own pre-checks only: the Hyperscan pass (prefilter.py) never
    tells."""
    _, prefilter = anonymizer._scanners()  # builds it, then it is told to answer None
    prefilter.candidates = lambda text: None
    return anonymizer


def without_prechecks(anonymizer: Any) -> Any:
    anonymizer.rules = tuple(dataclasses.replace(rule, needs=None) for rule in anonymizer.rules)
    return without_prefilter(anonymizer)


def per_rule(anonymizer: Any, rows: list[tuple[str, str]]) -> None:
    """Each rule's CPU per row three ways: plain `re` on every text (before issue 21's work),
    the Scanner (gateway/anonymize/scan.py) on every text, and what the Anonymizer pays: the
    Scanner behind the rule's pre-check. Then the name finder, looking up every word and only
    the words the pre-filter's pass says may begin a cue."""
    from gateway.anonymize.scan import scanner

    texts = [text for row in rows for text in row]

    def cost(run: Callable[[str], object]) -> float:
        started = time.process_time()
        for text in texts:
            run(text)
        return (time.process_time() - started) / len(rows) * 1e6

    print(f"  {'rule':16} {'plain re':>9} {'scanner':>9} {'+pre-check':>11}  µs per row")
    for rule in anonymizer.rules:
        scan = scanner(rule.pattern)
        needs = scanner(rule.needs) if rule.needs is not None else None
        plain = cost(lambda text, p=rule.pattern: list(p.finditer(text)))
        scanned = cost(lambda text, s=scan: list(s.finditer(text)))
        checked = cost(
            lambda text, s=scan, n=needs: (n is None or n.holds(text)) and list(s.finditer(text))
        )
        print(f"  {rule.kind:16} {plain:9.1f} {scanned:9.1f} {checked:11.1f}")
    names = cost(lambda text: anonymizer.names.find(text, bytearray(len(text))))
    print(f"  {'names':16} {names:9.1f}")
    # The words cues begin with, as the pre-filter's pass (timed with the rules) finds them.
    from gateway.anonymize.names import cue_words_at

    table, one_pass = anonymizer._scanners()
    cue_words = {text: cue_words_at(one_pass.candidates(text), len(table)) for text in texts}
    cued = cost(lambda text: anonymizer.names.find(text, bytearray(len(text)), cue_words[text]))
    print(f"  {'names, cue words':16} {cued:9.1f}  (where the pre-filter's pass found them)")


def load_anonymizer_class(path: Path) -> Callable[[], Any]:
    spec = importlib.util.spec_from_file_location("baseline_anonymize", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module.Anonymizer  # type: ignore[no-any-return]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--baseline", type=Path, help="an older anonymize.py to compare with")
    parser.add_argument("--rules", action="store_true", help="the cost of each rule")
    parser.add_argument(
        "--prompt-lines", type=int, default=5, help="corpus lines a prompt (220: ~10 KB)"
    )
    args = parser.parse_args(argv)
    rows = make_rows(args.rows, prompt_lines=args.prompt_lines)
    chars = sum(len(p) + len(a) for p, a in rows) / len(rows)
    from gateway.anonymize import Anonymizer

    started = time.perf_counter()
    current = Anonymizer()
    build_ms = (time.perf_counter() - started) * 1e3
    print(f"{args.rows} rows, {chars:.0f} characters per row on average")
    print(f"first Anonymizer() (reads the name lists): {build_ms:.1f} ms")
    print(f"current:  {per_row_microseconds(current, rows):8.1f} µs per row")
    unfiltered = without_prefilter(Anonymizer())
    print(f"no pre-filter: {per_row_microseconds(unfiltered, rows):8.1f} µs per row")
    plain = without_prechecks(Anonymizer())
    print(f"no pre-filter, no pre-checks: {per_row_microseconds(plain, rows):8.1f} µs per row")
    from exporters.privacy import CACHE_TEXTS

    cached = Anonymizer(cache_size=CACHE_TEXTS)  # the warm-up pass fills it
    print(f"cached, every text seen before: {per_row_microseconds(cached, rows):8.1f} µs per row")
    if args.rules:
        per_rule(Anonymizer(), rows)
    if args.baseline:
        baseline = load_anonymizer_class(args.baseline)()
        print(f"baseline: {per_row_microseconds(baseline, rows):8.1f} µs per row")
    return 0


if __name__ == "__main__":
    sys.exit(main())
