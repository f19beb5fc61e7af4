#!/usr/bin/env python3
"""Import circles between latch's source files (ARCHITECTURE.md: no module uses a layer above).

Reads every `src/**/*.rs` outside its `#[cfg(test)]` part, takes each path that starts with
`crate::`, `super::` or `self::`, and each `use child::…`, resolves it to the longest
matching module file, and reports every strongly connected set of more than one file.
A parent's `pub use child::…` is a re-export (a facade), not a use, and is not counted.
Exit status 1 if there is a circle.
"""
import glob
import re
import sys

sys.setrecursionlimit(10000)
FILES = glob.glob("src/**/*.rs", recursive=True)
EXTERNAL = {"std", "core", "alloc", "crate", "super", "self"}


def module_of(path):
    parts = path[len("src/"):-len(".rs")].split("/")
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return tuple(parts)


MODULES = {module_of(f) for f in FILES}


def resolve(path):
    for n in range(len(path), 0, -1):
        if tuple(path[:n]) in MODULES:
            return tuple(path[:n])
    return None


def uses(path):
    me = module_of(path)
    text = open(path, encoding="utf-8").read()
    cut = text.find("#[cfg(test)]")
    if cut >= 0:
        text = text[:cut]
    text = re.sub(r"^\s*pub(\([a-z]+\))? use [a-z_]+::.*$", "", text, flags=re.M)
    deps = set()
    for m in re.finditer(r"\b(crate|super|self)((?:::[A-Za-z_]+)+)", text):
        rest = m.group(2).split("::")[1:]
        base = {"crate": [], "self": list(me), "super": list(me[:-1])}[m.group(1)]
        deps.add(resolve(base + rest))
    for m in re.finditer(r"^\s*use ([a-z_]+)::", text, flags=re.M):
        if m.group(1) not in EXTERNAL:
            deps.add(resolve(list(me) + [m.group(1)]))
    deps.discard(None)
    deps.discard(me)
    return deps


def circles(edges):
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
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
                found.append(sorted("::".join(c) for c in comp))

    for v in list(edges):
        if v not in index:
            visit(v)
    return found


if __name__ == "__main__":
    found = circles({module_of(f): uses(f) for f in FILES})
    for c in found:
        print("import circle:", " <-> ".join(c))
    print(f"{len(found)} import circles among {len(FILES)} files")
    sys.exit(1 if found else 0)
