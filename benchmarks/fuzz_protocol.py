"""A longer fuzz run of every protocol decoder than the suite's (tests/test_fuzz_protocol.py).

Feeds each decoder hypothesis-generated input (random bytes, random msgpack values, and valid messages
with one field at any depth replaced by a value of another type), and counts the inputs tried and how they
ended. Any exception other than the protocol's error fails the run and prints the input.

    python -m benchmarks.fuzz_protocol --examples 5000 [--json out.json]
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path

import click
import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fuzz_inputs import DECODERS, VALID, any_message, confused  # noqa: E402

from anjeon.protocol import wire  # noqa: E402


def fuzz_kind(kind: str, examples: int) -> Counter[str]:
    outcomes: Counter[str] = Counter()

    valid = st.builds(
        lambda: msgpack.packb(VALID[kind](), use_bin_type=True)
    )  # shows the decoder accepts too

    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(raw=st.one_of(confused(kind), any_message(), valid))
    def run(raw: bytes) -> None:
        try:
            DECODERS[kind](raw)
            outcomes["accepted"] += 1
        except wire.ProtocolError as exc:
            outcomes[f"rejected:{exc.reason}"] += 1

    run()
    return outcomes


@click.command()
@click.option("--examples", default=5000, help="Inputs per message kind.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None)
def main(examples: int, json_path: Path | None) -> None:
    """Fuzz every decoder; print inputs tried and outcomes per kind."""
    started = time.monotonic()
    report = {}
    for kind in sorted(VALID):
        outcomes = fuzz_kind(kind, examples)
        report[kind] = {"tried": sum(outcomes.values()), **dict(sorted(outcomes.items()))}
        print(f"{kind:14s} {report[kind]['tried']:7d} inputs, {outcomes['accepted']:6d} accepted", flush=True)
    total = sum(r["tried"] for r in report.values())
    print(f"{total} inputs in {time.monotonic() - started:.0f} s, no exception but the protocol's error")
    if json_path:
        json_path.write_text(
            json.dumps({"examples_per_kind": examples, "total": total, "kinds": report}, indent=2)
        )


if __name__ == "__main__":
    main()
