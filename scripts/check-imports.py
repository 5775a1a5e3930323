#!/usr/bin/env python3
"""Checks that the modules of a Rust crate import each other without circles.

Usage: scripts/check-imports.py crates/server/src crates/web/src

Every `crate::a::b` and `super::x` path in a file is an edge from that file's module to the module the path names
(the longest prefix that is a module file). Two kinds of circle are refused:

- between the crate's top-level modules (`routes` -> `state` -> `engine` -> `db`, never back), and
- between sibling files of one directory (`databricks/auth.rs` and `databricks/config_file.rs`).

A child may use what its parent (`mod.rs`) holds: that is how a module shares private items with its parts, and it
is not a layer. Each circle is printed as the modules that form it, and the script exits with 1.
"""

import re
import sys
from pathlib import Path

PATH = re.compile(r"\b(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)+|::\{)")
USE_GROUP = re.compile(r"\buse\s+(crate|super)::((?:[A-Za-z_][A-Za-z0-9_]*::)*)\{([^;]*)\};", re.S)


def module_of(root: Path, file: Path) -> tuple:
    """The module path of a source file: `engine/mod.rs` -> ('engine',), `lib.rs` -> ()."""
    parts = list(file.relative_to(root).with_suffix("").parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return tuple(parts)


def strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return "\n".join(re.sub(r"//.*$", "", line) for line in text.splitlines())


def referenced_paths(text: str):
    """Yields (anchor, [segments]) for every crate:: / super:: path, expanding `use x::{a, b::c}` groups."""
    for match in USE_GROUP.finditer(text):
        anchor, prefix, group = match.group(1), match.group(2), match.group(3)
        base = [s for s in prefix.split("::") if s]
        for item in re.split(r",(?![^{]*\})", group):
            item = item.strip()
            if not item:
                continue
            head = re.match(r"[A-Za-z_][A-Za-z0-9_]*(?:::[A-Za-z_][A-Za-z0-9_]*)*", item)
            if head:
                yield anchor, base + head.group(0).split("::")
    for match in PATH.finditer(text):
        if match.group(2) == "::{":
            continue
        yield match.group(1), [s for s in match.group(2).split("::") if s]


def resolve(modules: set, here: tuple, anchor: str, segments: list):
    """The longest module named by the path, or None."""
    if anchor == "crate":
        base = ()
    else:
        base = here[:-1]
        while segments and segments[0] == "super":
            base = base[:-1]
            segments = segments[1:]
    best = None
    for i in range(len(segments) + 1):
        candidate = base + tuple(segments[:i])
        if candidate in modules:
            best = candidate
    return best


def circles(graph: dict) -> list:
    """Every group of nodes that reach each other (strongly connected components of more than one node), each
    given as one cycle through some of its nodes, sorted."""
    index, low, on_stack, stack, groups = {}, {}, set(), [], []

    def connect(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(set(graph) | {n for targets in graph.values() for n in targets}):
        if node not in index:
            connect(node)
    return sorted(groups)


def check(root: Path) -> list:
    files = {module_of(root, f): f for f in root.rglob("*.rs")}
    modules = set(files)
    edges = set()
    for module, file in files.items():
        text = strip_comments(file.read_text())
        # `mod tests` blocks and `#[cfg(test)]` items may reach anywhere; they are not part of the layering.
        text = re.split(r"#\[cfg\(test\)\]\s*mod\s+tests", text)[0]
        for anchor, segments in referenced_paths(text):
            target = resolve(modules, module, anchor, segments)
            if target is not None and target != module:
                edges.add((module, target))
    problems = []
    # Top-level modules: collapse every module to its first segment.
    top = {}
    for a, b in edges:
        if a and b and a[0] != b[0]:
            top.setdefault(a[0], set()).add(b[0])
    for group in circles(top):
        problems.append(f"{root}: top-level modules import each other in a circle: {', '.join(group)}")
    # Siblings: files directly under one parent, edges collapsed to the sibling each side belongs to.
    parents = {m[:-1] for m in modules if m}
    for parent in sorted(parents):
        depth = len(parent) + 1
        siblings = {}
        for a, b in edges:
            if len(a) >= depth and len(b) >= depth and a[:depth - 1] == parent and b[:depth - 1] == parent:
                if a[:depth] != b[:depth]:
                    siblings.setdefault(a[:depth], set()).add(b[:depth])
        if not parent:  # the top level is checked above
            continue
        for group in circles(siblings):
            names = ", ".join("/".join(c) for c in group)
            problems.append(f"{root}: modules of {'/'.join(parent)} import each other in a circle: {names}")
    return problems


def main() -> int:
    roots = [Path(arg) for arg in sys.argv[1:]] or [Path("crates/server/src"), Path("crates/web/src")]
    problems = [p for root in roots for p in check(root)]
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems:
        print(f"no import circles in {', '.join(str(r) for r in roots)}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
