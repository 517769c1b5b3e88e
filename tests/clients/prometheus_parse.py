#!/usr/bin/env python3
"""Parses a Prometheus text exposition from stdin with the Prometheus project's own Python
client (`prometheus_client.parser`) and prints each family as JSON, one per line:
{"name": ..., "type": ..., "samples": [[sample name, labels, value], ...]}.
A scrape this parser rejects makes it exit non-zero with the parser's error."""

import json
import sys

from prometheus_client.parser import text_string_to_metric_families

for family in text_string_to_metric_families(sys.stdin.read()):
    print(
        json.dumps(
            {
                "name": family.name,
                "type": family.type,
                "samples": [[s.name, s.labels, s.value] for s in family.samples],
            }
        )
    )
