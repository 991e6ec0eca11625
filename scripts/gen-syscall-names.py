#!/usr/bin/env python3
"""Regenerates crates/monitor/src/syscall_names.rs from the kernel's x86_64 syscall header."""
import re
names = {}
for line in open('/usr/include/x86_64-linux-gnu/asm/unistd_64.h'):
    m = re.match(r'#define __NR_(\w+) (\d+)', line)
    if m:
        names[int(m.group(2))] = m.group(1)
arr = [names.get(i, "") for i in range(max(names) + 1)]
out = '''//! x86_64 system call names by number, generated from the kernel's `asm/unistd_64.h`
//! (`scripts/gen-syscall-names.py`); "" where a number is unused.
pub const X86_64: &[&str] = &[
'''
for i in range(0, len(arr), 6):
    out += '    ' + ' '.join(f'"{n}",' for n in arr[i:i + 6]) + '\n'
out += '];\n'
open('crates/monitor/src/syscall_names.rs', 'w').write(out)
