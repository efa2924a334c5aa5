#!/usr/bin/env python3
"""The import graph between files under src/: every `crate::` and `super::`
path (in `use` lines and inline), test modules left out, resolved to the
file that defines it. Prints the files, the import arrows, the circles
(files that import each other in a loop), and the arrows that run back up
the layers of docs/contributing.md (main > cmd > config > produce >
consume > dashboard > crawl > queue > run > demo, error). Exit 1 if there is a circle
or an arrow that runs back up.

    python3 scripts/import-graph.py [SRC_DIR] [--list]
"""
import os
import re
import sys

LAYERS = ["main.rs", "cmd", "config", "produce", "consume", "dashboard", "crawl", "queue", "run", "demo", "error.rs"]


def modules(src):
    """Module path (tuple) -> file, for every .rs file."""
    out = {}
    for dirpath, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            path = os.path.join(dirpath, f)
            rel = os.path.relpath(path, src)[:-3].split(os.sep)
            if rel[-1] == "mod":
                rel = rel[:-1]
            if rel == ["main"]:
                rel = []
            out[tuple(rel)] = path
    return out


def code_of(path):
    text = open(path, encoding="utf-8").read()
    text = re.split(r"#\[cfg\(test\)\]\s*mod tests", text)[0]
    # Comments mention paths that are no imports.
    return "\n".join(re.sub(r"//.*", "", line) for line in text.split("\n"))


def targets(path, mods, src):
    rel = os.path.relpath(path, src)[:-3].split(os.sep)
    here = rel[:-1] if rel[-1] == "mod" else rel
    if rel == ["main"]:
        here = []
    code = code_of(path)
    found = set()
    # `use a::{b, c::d}` groups are flattened to their first segment after
    # the prefix, which is enough to name the file (the longest module).
    for m in re.finditer(r"\b(crate|super)((?:::(?:super|\w+))+)", code):
        segs = m.group(2).split("::")[1:]
        if m.group(1) == "crate":
            base = []
        else:
            base = list(here[:-1])
        while segs and segs[0] == "super":
            base = base[:-1]
            segs = segs[1:]
        full = base + segs
        for n in range(len(full), -1, -1):
            key = tuple(full[:n])
            if key in mods:
                if mods[key] != path and key != ():
                    found.add(mods[key])
                break
    return found


def layer(path, src):
    rel = os.path.relpath(path, src).split(os.sep)
    return LAYERS.index(rel[0]) if rel[0] in LAYERS else len(LAYERS)


def circles(graph):
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    src = args[0] if args else "src"
    mods = modules(src)
    graph = {p: targets(p, mods, src) for p in mods.values()}
    arrows = sorted((a, b) for a, bs in graph.items() for b in bs)
    up = [(a, b) for a, b in arrows if layer(b, src) < layer(a, src)]
    loops = circles(graph)
    print(f"files: {len(graph)}")
    print(f"import arrows between files: {len(arrows)}")
    print(f"circles: {len(loops)}")
    for c in loops:
        print("  " + " <-> ".join(c))
    print(f"arrows that run back up: {len(up)}")
    for a, b in up:
        print(f"  {a} -> {b}")
    if "--list" in sys.argv:
        for a, b in arrows:
            print(f"{a} -> {b}")
    return 1 if loops or up else 0


if __name__ == "__main__":
    sys.exit(main())
