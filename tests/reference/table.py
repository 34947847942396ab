"""Prints the table of a JUnit XML report: test, result, and why it did not pass.

    table.py REPORT.xml REFERENCE_COMMIT

Rows in Markdown, ready for the README's compatibility section.
"""

from __future__ import annotations

import datetime
import sys
import xml.etree.ElementTree as ET


def reason(element: ET.Element) -> str:
    text = (element.get("message") or element.text or "").strip()
    line = text.splitlines()[0] if text else ""
    return line.replace("|", "\\|")[:160]


def main() -> None:
    report, commit = sys.argv[1], sys.argv[2]
    rows, counts = [], {}
    for case in ET.parse(report).getroot().iter("testcase"):
        name = case.get("name", "?")
        module = (case.get("classname") or "").rsplit(".", 1)[-1]
        result, why = "pass", ""
        for tag in ("failure", "error", "skipped"):
            found = case.find(tag)
            if found is not None:
                result = {"failure": "FAIL", "error": "ERROR", "skipped": "skip"}[tag]
                why = reason(found)
                break
        counts[result] = counts.get(result, 0) + 1
        rows.append(f"| {module} | {name} | {result} | {why} |")
    today = datetime.date.today().isoformat()
    summary = ", ".join(f"{n} {r}" for r, n in sorted(counts.items()))
    print(f"\nReference online suite, {today}, chatmail/relay {commit}: {summary}\n")
    print("| module | test | result | reason |")
    print("|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
