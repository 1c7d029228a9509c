"""``python3 ini.py set FILE SECTION KEY VALUE``: devstack's ``iniset``.

Sets one option in an INI file as devstack's own ``iniset`` does: the
section and the file are made if missing, the option's first line is
replaced where it is, otherwise it is added at the end of its section;
comments and the order of everything else are kept.
"""

import os
import re
import sys


def iniset(path, section, key, value):
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        lines = []
    option = '%s = %s' % (key, value)
    header = re.compile(r'^\s*\[([^\]]+)\]\s*$')
    own = re.compile(r'^\s*%s\s*=' % re.escape(key))
    start = end = None
    for i, line in enumerate(lines):
        m = header.match(line)
        if m:
            if start is not None and end is None:
                end = i
            if m.group(1) == section and start is None:
                start = i
    if start is None:
        if lines and lines[-1].strip():
            lines.append('')
        lines += ['[%s]' % section, option]
    else:
        end = len(lines) if end is None else end
        for i in range(start + 1, end):
            if own.match(lines[i]):
                lines[i] = option
                break
        else:
            # After the section's last option, before its trailing blanks.
            at = end
            while at > start + 1 and not lines[at - 1].strip():
                at -= 1
            lines.insert(at, option)
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    os.replace(tmp, path)


def main(argv):
    if len(argv) != 5 or argv[0] != 'set':
        sys.exit('usage: ini.py set FILE SECTION KEY VALUE')
    iniset(*argv[1:])


if __name__ == '__main__':
    main(sys.argv[1:])
