"""The C tree's layers: what each file may include, and no circles.

    src/core   pure: no socket, no database      may include core
    src/io     the outside: database, HTTP        core, io
    src/api    the admin API                      core, io, api
    src/fed    the federation link                core, io, fed
    src/tbctl  the command-line client            core, tbctl
    daemon     wires the daemon's parts           anything

A header in include/ belongs to the layer of the file that implements it.
Within a directory, files call each other one way only: a file that calls
a function another defines must not be called back by it, directly or
round a circle. Prints what breaks a rule, and "N passed, N failed"."""

import glob
import os
import re
import sys

ALLOWED = {"core": {"core"}, "io": {"core", "io"}, "api": {"core", "io", "api"},
           "fed": {"core", "io", "fed"}, "tbctl": {"core", "tbctl"},
           "daemon": {"core", "io", "api", "fed", "daemon"}}
# Headers whose implementation is not a file of the same name.
HEADERS = {"api.h": "api", "fed.h": "fed", "tbctl.h": "tbctl"}

INCLUDE = re.compile(r'^#include "([^"]+)"', re.M)
DEFINED = re.compile(r"^(?!static\b)[a-z][\w \*]*?\b(\w+)\(([^;{]*?)\)\s*(?:__attribute__\(.*\)\s*)?$",
                     re.M)
CALLED = re.compile(r"\b([a-z_]\w*)\s*\(")


def layer_of(path):
    parts = path.split(os.sep)
    return parts[1] if parts[0] == "src" else parts[0]


def header_layers(root):
    layers = {}
    for h in glob.glob(os.path.join(root, "include", "*.h")):
        name = os.path.basename(h)
        if name in HEADERS:
            layers[name] = HEADERS[name]
            continue
        impl = [p for p in glob.glob(os.path.join(root, "src", "*", name[:-2] + ".c"))
                if os.sep + "tbctl" + os.sep not in p]
        layers[name] = layer_of(os.path.relpath(impl[0], root)) if impl else None
    return layers


def without_comments(text):
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r'"(\\.|[^"\\])*"', '""', text)


def circles(files, texts):
    """The circles among files, each as a list of names."""
    defines = {}
    for f in files:
        for m in DEFINED.finditer(texts[f]):
            defines.setdefault(m.group(1), f)
    calls = {f: {defines[c] for c in CALLED.findall(texts[f])
                 if c in defines and defines[c] != f} for f in files}
    # Tarjan's strongly connected components.
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in calls[v]:
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

    for f in files:
        if f not in index:
            visit(f)
    return out


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "."
    headers = header_layers(root)
    sources = sorted(glob.glob(os.path.join(root, "src", "*", "*.[ch]")) +
                     glob.glob(os.path.join(root, "daemon", "*.c")) +
                     glob.glob(os.path.join(root, "include", "*.h")))
    passed, failed = 0, []
    texts = {}
    for path in sources:
        rel = os.path.relpath(path, root)
        layer = headers[rel[8:]] if rel.startswith("include" + os.sep) else layer_of(rel)
        if layer == "sql":
            continue
        text = open(path).read()
        texts[rel] = without_comments(text)
        for inc in INCLUDE.findall(text):
            target = headers.get(inc)
            if inc == "internal.h" or inc.endswith(".pb-c.h"):
                target = layer if inc == "internal.h" else "core"
            if target is None:
                failed.append(f"{rel}: includes {inc}, which no layer implements")
            elif target not in ALLOWED.get(layer, set()):
                failed.append(f"{rel}: a {layer} file includes {inc} of {target}")
            else:
                passed += 1
    for layer in ALLOWED:
        files = sorted(f for f in texts if layer_of(f) == layer and f.endswith(".c"))
        found = circles(files, texts)
        for c in found:
            failed.append(f"{layer}: these files call each other round a circle: "
                          + ", ".join(c))
        passed += len(files) - sum(len(c) for c in found)
    for f in failed:
        print(f)
    print(f"layers: {passed} passed, {len(failed)} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
