#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Counts test cases in JUnit XML files (doctest and pytest write them) and
prints one line "N passed, N failed". Exit status 1 if anything failed or a
file is missing or unreadable (a suite that did not report counts as failed)."""
import sys
import xml.etree.ElementTree as ET


def main(paths):
    passed = failed = 0
    bad = []
    for p in paths:
        try:
            root = ET.parse(p).getroot()
        except Exception as e:  # a crashed suite leaves no or a broken report
            bad.append(f"{p}: {e}")
            failed += 1
            continue
        for case in root.iter("testcase"):
            if case.find("skipped") is not None:
                continue
            if case.find("failure") is not None or case.find("error") is not None:
                failed += 1
                print(f"FAILED {p}: {case.get('classname', '')}::{case.get('name')}")
            else:
                passed += 1
    for b in bad:
        print(f"FAILED (no report) {b}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
