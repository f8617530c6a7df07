#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Compiles the web UI's files into a C++ source (src/ui/meson.build runs it).

usage: embed_assets.py OUTPUT.cc FILE...

The JavaScript modules are bundled into one, app.js (see bundle()). Each
other file, and the bundle, becomes an rp::ui::Asset named by its base name:
its bytes, a gzip
of them (level 9, no name or time, so the build is reproducible), its
content type and a strong ETag (the first 128 bits of its SHA-256). Bytes are
written as octal escapes in string literals: no escape can run into the next
character, and the compiler reads them far faster than an initialiser list.
"""
import gzip
import hashlib
import os
import re
import sys

TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
    ".png": "image/png",
    ".ico": "image/x-icon",
}


IMPORT = re.compile(r"^import\s*\{([^}]*)\}\s*from\s*'\./([\w.-]+\.js)';[ \t]*$", re.M)
EXPORT = re.compile(r"^export\s+((?:async\s+)?function\*?|class|const|let)\s+([A-Za-z_$][\w$]*)",
                    re.M)
DYNAMIC = re.compile(r"\bimport\(\s*'\./([\w.-]+\.js)'\s*\)")


def var(name: str) -> str:
    return "__m_" + re.sub(r"\W", "_", name[:-3])


def bundle(sources: dict, entry: str) -> bytes:
    """The app's ES modules as one module, `entry` last (one request, not one
    per module). Each module runs in its own function scope and returns its
    exports; `import {a, b as c} from './x.js'` becomes a destructuring of
    x's exports, `import('./x.js')` a promise of them, resolved once the
    bundle has run. Only these
    forms are understood: any other import or export fails the build."""
    deps, bodies = {}, {}
    if len({var(n) for n in sources}) != len(sources):
        raise ValueError("two module names map to one bundle name")
    for name, text in sources.items():
        deps[name] = []
        lines = []
        for m in IMPORT.finditer(text):
            target = m.group(2)
            if target not in sources:
                raise ValueError(f"{name} imports {target}, which is not in the app")
            deps[name].append(target)
            specs = []
            for spec in filter(None, (x.strip() for x in m.group(1).split(","))):
                parts = spec.split()
                if len(parts) == 3 and parts[1] == "as":
                    specs.append(f"{parts[0]}: {parts[2]}")
                elif len(parts) == 1:
                    specs.append(parts[0])
                else:
                    raise ValueError(f"{name}: cannot bundle the import {spec!r}")
            lines.append(f"const {{{', '.join(specs)}}} = {var(target)};")
        body = IMPORT.sub("", text)
        exports = [m.group(2) for m in EXPORT.finditer(body)]
        body = EXPORT.sub(lambda m: f"{m.group(1)} {m.group(2)}", body)

        def dynamic(m):
            if m.group(1) not in sources:
                raise ValueError(f"{name} imports {m.group(1)}, which is not in the app")
            # After the whole bundle has run (a microtask): every module is
            # defined by then, whatever the order.
            return f"Promise.resolve().then(() => {var(m.group(1))})"
        body = DYNAMIC.sub(dynamic, body)
        # Anything left that looks like an import or export, anywhere (a
        # double-quoted import(), an `export {`, an export in a comment):
        # the build fails rather than bundle what it does not understand.
        left = re.search(r"\bimport\s*\(|\bexport\b|^\s*import\b", body, re.M)
        if left:
            line = body[:left.start()].count("\n") + 1
            raise ValueError(f"{name}: cannot bundle line {line}: "
                             f"{body.splitlines()[line - 1].strip()!r}")
        for m in EXPORT.finditer(text):
            if m.group(1) == "let":
                raise ValueError(f"{name}: export let {m.group(2)} (a live binding) "
                                 "cannot be bundled; export a function or a const")
            rest = text[m.end():text.index("\n", m.end())]
            if m.group(1) == "const" and "," in rest.split("=", 1)[0]:
                raise ValueError(f"{name}: one export const per declaration")
        bodies[name] = "\n".join(lines) + body + f"\nreturn {{{', '.join(exports)}}};\n"
    order, state = [], {}

    def visit(n):
        if state.get(n) == 1:
            raise ValueError(f"an import cycle through {n}")
        if state.get(n) != 2:
            state[n] = 1
            for d in deps[n]:
                visit(d)
            state[n] = 2
            order.append(n)
    for n in sorted(sources):
        if n != entry:
            visit(n)
    visit(entry)
    out = ["// Bundled by tools/embed_assets.py from src/ui/app/*.js: do not edit."]
    for n in order:
        out.append(f"// --- {n}\nconst {var(n)} = (() => {{\n{bodies[n]}}})();")
    return ("\n".join(out) + "\n").encode()


def literal(data: bytes) -> str:
    lines = []
    for i in range(0, len(data), 64):
        lines.append('"' + "".join(f"\\{b:03o}" for b in data[i:i + 64]) + '"')
    return "\n    ".join(lines) if lines else '""'


def main() -> int:
    if len(sys.argv) < 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    out, files = sys.argv[1], sys.argv[2:]
    names = [os.path.basename(f) for f in files]
    if len(set(names)) != len(names):
        print("embed_assets: two files share a base name", file=sys.stderr)
        return 2
    # The JavaScript modules become one: app.js, the entry.
    scripts = {n: open(f, encoding="utf-8").read() for f, n in zip(files, names)
               if n.endswith(".js")}
    assets = {n: open(f, "rb").read() for f, n in zip(files, names) if not n.endswith(".js")}
    if scripts:
        try:
            assets["app.js"] = bundle(scripts, "app.js")
        except ValueError as e:
            print(f"embed_assets: {e}", file=sys.stderr)
            return 2
    # The page names each file with its version (?v=, from its digest): a
    # versioned URL is cached for good (the server says immutable), and a
    # new build's page names new URLs.
    page = assets.get("index.html")
    if page is not None:
        text = page.decode("utf-8")
        for name, data in assets.items():
            if name != "index.html":
                text = text.replace(f'"/ui/assets/{name}"',
                                    f'"/ui/assets/{name}?v={hashlib.sha256(data).hexdigest()[:16]}"')
        assets["index.html"] = text.encode("utf-8")
    parts = ["// Generated by tools/embed_assets.py from src/ui/app/: do not edit.",
             '#include "ui/assets.hh"', "", "namespace rp::ui {", "", "namespace {", ""]
    rows = []
    for i, (name, data) in enumerate(sorted(assets.items())):
        ext = os.path.splitext(name)[1]
        if ext not in TYPES:
            print(f"embed_assets: no content type for {name}", file=sys.stderr)
            return 2
        packed = gzip.compress(data, compresslevel=9, mtime=0)
        etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
        parts.append(f"constexpr char body{i}[] =\n    {literal(data)};")
        parts.append(f"constexpr char gzip{i}[] =\n    {literal(packed)};")
        rows.append(f'    {{"{name}", "{TYPES[ext]}", {{body{i}, sizeof body{i} - 1}}, '
                    f'{{gzip{i}, sizeof gzip{i} - 1}}, R"({etag})"}},')
    parts += ["", "constexpr Asset table[] = {", *rows, "};", "", "} // namespace", "",
              "std::span<const Asset> assets() noexcept { return table; }", "",
              "} // namespace rp::ui", ""]
    with open(out, "w") as f:
        f.write("\n".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
