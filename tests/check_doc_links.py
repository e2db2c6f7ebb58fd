#!/usr/bin/env python3
"""Every document the sources cite travels with the repository.

Checks, over the repository's text files (sources, CMake, scripts, Markdown):
  - each `docs/NAME.md` (or other `docs/...` path) a file mentions exists;
  - each relative Markdown link `[text](path)` in a .md file points at a file or folder that
    exists (anchors and web links are not followed);
  - nothing cites a document outside the repository: the developers' shared folder beside
    the checkout, or the background notes only they had (the names OUTSIDE below matches;
    their content lives in docs/ now);
  - the masker example in README.md and CONTRIBUTING.md is the tested
    tests/out_of_tree/flip.cpp.
Usage: check_doc_links.py REPO_ROOT. Exit 1 with one line per problem (file:line: what).
"""
import os
import re
import sys

TEXT = {".cpp", ".hpp", ".h", ".in", ".txt", ".cmake", ".md", ".py", ".sh", ".toml", ".json"}
SKIP_DIRS = {".git", "results", "__pycache__"}
DOC_PATH = re.compile(r"(?<![\w./-])docs/[\w./-]*\w")
MD_LINK = re.compile(r"\]\(([^)\s]+)\)")
OUTSIDE = re.compile(r"\.\./shared|\b(?:REFERENCE|DATA|DESIGN|STYLE|PLATFORM)\.md\b")


def text_files(root):
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.startswith("build")]
        for name in files:
            if os.path.splitext(name)[1] in TEXT or name in ("CMakeLists.txt", "run", "setup.sh"):
                yield os.path.join(folder, name)


def example_drift(root):
    """The masker example of README.md and CONTRIBUTING.md is tests/out_of_tree/flip.cpp,
    which the suite builds: the documents must show that file's code."""
    source = open(os.path.join(root, "tests/out_of_tree/flip.cpp"), encoding="utf-8").read()
    code = source[source.index("#include <ATen/ATen.h>"):].strip()
    problems = []
    for doc in ("README.md", "CONTRIBUTING.md"):
        text = open(os.path.join(root, doc), encoding="utf-8").read()
        start = text.find("// plugins/maskers/flip/flip.cpp")
        if start < 0:
            problems.append(f"{doc}: the flip masker example is missing")
            continue
        block = text[start:text.index("```", start)]
        if block[block.index("#include <ATen/ATen.h>"):].strip() != code:
            problems.append(f"{doc}: the flip masker example differs from tests/out_of_tree/flip.cpp")
    return problems


def main(root):
    root = os.path.abspath(root)
    me = os.path.abspath(__file__)
    problems = []
    for path in text_files(root):
        if os.path.abspath(path) == me:
            continue
        rel = os.path.relpath(path, root)
        try:
            lines = open(path, encoding="utf-8").read().split("\n")
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(lines, 1):
            where = f"{rel}:{number}"
            for m in OUTSIDE.finditer(line):
                problems.append(f"{where}: cites '{m.group(0)}', which is not in the repository")
            for m in DOC_PATH.finditer(line):
                cited = m.group(0).rstrip(".")
                if not os.path.exists(os.path.join(root, cited)):
                    problems.append(f"{where}: cites '{cited}', which does not exist")
            if path.endswith(".md"):
                for m in MD_LINK.finditer(line):
                    target = m.group(1).split("#")[0]
                    if not target or re.match(r"^[a-z]+:", target):
                        continue
                    if not os.path.exists(os.path.join(os.path.dirname(path), target)):
                        problems.append(f"{where}: links to '{m.group(1)}', which does not exist")
    problems += example_drift(root)
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} citation(s) of documents that are not in the repository; write "
              "the document under docs/ or fix the path")
        return 1
    print("every cited document is in the repository")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "."))
