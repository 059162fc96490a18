#!/usr/bin/env python3
"""List top-level C functions longer than LIMIT lines, counted from the line
holding the body's opening brace to the line holding its closing brace
(comments and string literals are skipped when matching braces).

Usage: scripts/long-functions.py LIMIT FILE...
e.g.   scripts/long-functions.py 80 $(git ls-files 'src/*.c')"""
import re, sys

def strip(src):
    """Blank out comments and string/char literals, keeping newlines."""
    out, i, n = [], 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith('/*', i):
            j = src.find('*/', i + 2); j = n if j < 0 else j + 2
            out.append('\n' * src.count('\n', i, j)); i = j
        elif src.startswith('//', i):
            j = src.find('\n', i); j = n if j < 0 else j
            i = j
        elif c in '"\'':
            j = i + 1
            while j < n and src[j] != c:
                j += 2 if src[j] == '\\' else 1
            out.append(c + c); i = j + 1
        else:
            out.append(c); i += 1
    return ''.join(out)

limit = int(sys.argv[1])
for f in sys.argv[2:]:
    text = strip(open(f, errors='replace').read())
    depth, line, head, start = 0, 1, '', None
    for ch in text:
        if ch == '\n':
            line += 1
        if depth == 0:
            if ch == '{':
                h = ' '.join(head.split())
                is_fn = ('(' in h and '=' not in h and not re.match(r'^(typedef|struct|enum|union)\b', h.split('#')[-1].strip()))
                m = re.search(r'([A-Za-z_]\w*)\s*\([^()]*(\([^()]*\)[^()]*)*\)\s*$', h)
                start = (line, m.group(1) if (is_fn and m) else None)
                depth = 1
                continue
            if ch in ';}':
                head = ''
            elif ch == '\n' and head.strip().startswith('#'):
                head = ''
            else:
                head += ch
            continue
        if ch == '{':
            depth += 1
        elif ch == '}':
            depth -= 1
            if depth == 0:
                if start[1]:
                    n = line - start[0] + 1
                    if n > limit:
                        print(f"{n:4d} {f}:{start[0]} {start[1]}")
                head = ''
