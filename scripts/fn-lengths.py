#!/usr/bin/env python3
"""Functions under src/ of LIMIT lines or more (default 80), from the `fn`
line to its closing brace (rustfmt layout). Exit 1 if there is one.

    python3 scripts/fn-lengths.py [SRC_DIR] [LIMIT]
"""
import os
import re
import sys

FN = re.compile(r'^(\s*)(pub(\([^)]*\))? )?(const )?(unsafe )?(extern "C" )?fn (\w+)')


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "src"
    limit = int(sys.argv[2]) if len(sys.argv) > 2 else 80
    long = []
    for dirpath, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            path = os.path.join(dirpath, f)
            lines = open(path, encoding="utf-8").read().split("\n")
            for i, line in enumerate(lines):
                m = FN.match(line)
                if not m or line.rstrip().endswith(";"):
                    continue
                end = next((j for j in range(i + 1, len(lines)) if lines[j] == m.group(1) + "}"), i)
                if end - i + 1 >= limit:
                    long.append((end - i + 1, path, i + 1, m.group(7)))
    for n, path, line, name in sorted(long, reverse=True):
        print(f"{path}:{line}: {name} is {n} lines (keep functions under {limit})")
    return 1 if long else 0


if __name__ == "__main__":
    sys.exit(main())
