"""Parses a Prometheus text exposition (stdin) with the reference parser,
prometheus_client.parser, and prints its samples as JSON lines:
{"family", "type", "name", "labels", "value"}. Exits non-zero (with the
parser's error) when the text does not parse, so obol's tests fail on any
exposition Prometheus itself would refuse."""

import json
import sys

from prometheus_client.parser import text_string_to_metric_families


def main() -> int:
    text = sys.stdin.read()
    try:
        families = list(text_string_to_metric_families(text))
    except Exception as e:  # the parser raises ValueError and friends
        print(f"unparseable exposition: {e!r}", file=sys.stderr)
        return 1
    for family in families:
        for s in family.samples:
            print(
                json.dumps(
                    {
                        "family": family.name,
                        "type": family.type,
                        "name": s.name,
                        "labels": s.labels,
                        "value": s.value,
                    }
                )
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
