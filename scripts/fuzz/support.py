"""Helpers of scripts/fuzz-api.sh, run with the fuzzing virtualenv's Python.

  support.py seed BASE_URL USER OUT_JSON       create chats and answers whose ids the hooks put into paths
  support.py summary COUNTS_JSONL JUNIT_XML... print requests and failures per operation; exit 1 on a failure
  support.py expect-429 COUNTS_JSONL PASS      exit 1 unless PASS saw at least one 429 on POST /api/chat
"""

from __future__ import annotations

import json
import sys
import time
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict

import requests


def seed(base_url: str, user: str, out_path: str) -> None:
    session = requests.Session()
    session.headers["x-forwarded-email"] = user

    def create_chat(title: str) -> str:
        response = session.post(f"{base_url}/api/chats", json={"title": title}, timeout=30)
        response.raise_for_status()
        return response.json()["id"]

    chats = [create_chat(f"fuzz seed {i}") for i in range(4)]
    deletable = [create_chat(f"fuzz deletable {i}") for i in range(4)]
    generations = []
    for chat_id in chats[:2]:
        for turn in range(3):
            response = session.post(
                f"{base_url}/api/chat",
                json={"id": chat_id, "message": f"seed message {turn}"},
                headers={"prefer": "respond-async"},
                timeout=30,
            )
            response.raise_for_status()
            generation_id = response.json()["generation_id"]
            generations.append(generation_id)
            wait_until_finished(session, base_url, generation_id)
    first_page = session.get(f"{base_url}/api/chats", params={"limit": 2}, timeout=30)
    first_page.raise_for_status()
    models = session.get(f"{base_url}/api/models", timeout=30)
    models.raise_for_status()
    seed_data = {
        "chats": chats,
        "deletable_chats": deletable,
        "generations": generations,
        "chat_cursors": [first_page.json()["next_cursor"]],
        "models": [model["id"] for model in models.json()["models"]],
    }
    with open(out_path, "w", encoding="utf-8") as out:
        json.dump(seed_data, out)
    print(f"seeded {len(chats) + len(deletable)} chats and {len(generations)} answers")


def wait_until_finished(session: requests.Session, base_url: str, generation_id: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        view = session.get(f"{base_url}/api/generations/{generation_id}", timeout=30).json()
        if view["status"] != "streaming":
            return
        time.sleep(0.05)
    raise SystemExit(f"seed answer {generation_id} did not finish within 30 s")


def read_counts(path: str) -> dict[str, dict[str, Counter[int]]]:
    """{pass: {operation: Counter(status -> requests)}}, from the lines the hooks append."""
    passes: dict[str, dict[str, Counter[int]]] = defaultdict(lambda: defaultdict(Counter))
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            for label, statuses in record["counts"].items():
                for status, n in statuses.items():
                    passes[record["pass"]][label][int(status)] += n
    return passes


def failures_by_operation(junit_paths: list[str]) -> Counter[str]:
    """Failed or errored test cases per operation label in schemathesis' JUnit reports."""
    failed: Counter[str] = Counter()
    for path in junit_paths:
        for case in ET.parse(path).getroot().iter("testcase"):
            problems = case.findall("failure") + case.findall("error")
            if problems:
                failed[case.get("name", "?")] += len(problems)
    return failed


def summary(counts_path: str, junit_paths: list[str]) -> int:
    passes = read_counts(counts_path)
    failed = failures_by_operation(junit_paths)
    header = f"{'pass':<6} {'operation':<34} {'requests':>8} {'2xx':>6} {'4xx':>6} {'429':>5} {'5xx':>5}  statuses"
    print(header)
    print("-" * len(header))
    total = Counter()
    for pass_name, operations in sorted(passes.items()):
        for label, statuses in sorted(operations.items(), key=lambda item: item[0].split(" ", 1)[::-1]):
            row = {
                "requests": sum(statuses.values()),
                "2xx": sum(n for s, n in statuses.items() if 200 <= s < 300),
                "4xx": sum(n for s, n in statuses.items() if 400 <= s < 500),
                "429": statuses.get(429, 0),
                "5xx": sum(n for s, n in statuses.items() if s >= 500),
            }
            total.update(row)
            detail = " ".join(f"{s}:{n}" for s, n in sorted(statuses.items()))
            print(
                f"{pass_name:<6} {label:<34} {row['requests']:>8} {row['2xx']:>6} {row['4xx']:>6} "
                f"{row['429']:>5} {row['5xx']:>5}  {detail}"
            )
    print("-" * len(header))
    print(
        f"{'total':<41} {total['requests']:>8} {total['2xx']:>6} {total['4xx']:>6} {total['429']:>5} {total['5xx']:>5}"
    )
    print(f"failures: {sum(failed.values())}" + "".join(f"\n  {label}: {n}" for label, n in sorted(failed.items())))
    return 1 if failed or total["5xx"] else 0


def expect_429(counts_path: str, pass_name: str) -> int:
    statuses = read_counts(counts_path).get(pass_name, {}).get("POST /api/chat", Counter())
    if statuses.get(429, 0) == 0:
        print(f"the {pass_name} pass never reached a per-user limit: {dict(statuses)}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str]) -> int:
    match argv:
        case ["seed", base_url, user, out_path]:
            seed(base_url, user, out_path)
            return 0
        case ["summary", counts_path, *junit_paths]:
            return summary(counts_path, junit_paths)
        case ["expect-429", counts_path, pass_name]:
            return expect_429(counts_path, pass_name)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
