#!/usr/bin/env python3
"""No option accepted and ignored: every option a built-in schema declares is read.

A schema declares options with OptionSchema::add_*("name", ...) (framework/, plugins/,
datasets/); code reads them with Options::get_*("name"). An option that is declared in a
file but read nowhere in the tree is accepted by the config checker and then ignored (as
train.device once was). This check fails listing each such option with its file and line.
Options read through a helper that takes the name as a variable are listed in READ_ELSEWHERE
with the place that reads them.

Usage: check_options_read.py SOURCE_DIR
"""
import pathlib
import re
import sys

DECLARE = re.compile(r'\badd_(?:required_)?(?:int|real|string|bool|choice|int_pair|int_list|real_list|string_list)\(\s*"([A-Za-z0-9_]+)"')
READ = re.compile(r'\bget_(?:int|real|string|bool|int_pair|int_list|real_list|string_list)\(\s*"([A-Za-z0-9_]+)"')
# Options read by name through a variable or a loop, not a literal get_*("name").
READ_ELSEWHERE = {
    # Informational text: recorded with every run's configuration (RunRecord::config_toml).
    "description": "framework/src/config.cpp (resolved_text writes [experiment])",
}


def main(root: pathlib.Path) -> int:
    files = [p for d in ("framework", "plugins", "datasets") for p in (root / d).rglob("*")
             if p.suffix in (".cpp", ".hpp", ".inc")]
    declared, read = [], set()
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        read.update(READ.findall(text))
        for m in DECLARE.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            declared.append((m.group(1), path.relative_to(root), line))
    unread = [(n, f, l) for n, f, l in declared if n not in read and n not in READ_ELSEWHERE]
    if not declared:
        print("check_options_read: found no option declarations; is SOURCE_DIR right?")
        return 1
    for name, file, line in unread:
        print(f"{file}:{line}: option '{name}' is declared but never read (get_*(\"{name}\")): "
              "read it, or refuse values it cannot honour, or remove it")
    print(f"check_options_read: {len(declared)} declared options, {len(unread)} never read")
    return 1 if unread else 0


if __name__ == "__main__":
    sys.exit(main(pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".")))
