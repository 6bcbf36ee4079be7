#!/usr/bin/env python3
"""Reads a dreamlog server's GET /metrics with the official Prometheus client's parser.

    python3 tools/python/metrics_check.py URL [TOKEN]

Prints one JSON object: family name → {"type": ..., "samples": [[name, labels, value], ...]}.
The parser refuses anything that is not the text exposition format (tests/metrics.rs).
"""

import json
import sys
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def main() -> int:
    url = sys.argv[1].rstrip("/") + "/metrics"
    headers = {"Authorization": f"Bearer {sys.argv[2]}"} if len(sys.argv) > 2 else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as resp:
        content_type = resp.headers.get("Content-Type", "")
        text = resp.read().decode()
    out = {"content_type": content_type, "families": {}}
    for family in text_string_to_metric_families(text):
        out["families"][family.name] = {
            "type": family.type,
            "samples": [[s.name, s.labels, s.value] for s in family.samples],
        }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
