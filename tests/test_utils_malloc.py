"""keep_freed_memory: glibc accepts the settings (checked in a child process, so this one keeps its allocator)."""

from __future__ import annotations

import platform
import subprocess
import sys

CHILD = """
import ctypes, resource
from nnunet_filternet.utils.malloc import keep_freed_memory
print(keep_freed_memory())
# a freed 64 MiB block comes back without new page faults when memory is kept
buffers = [bytearray(64 * 2**20) for _ in range(2)]
del buffers
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
again = bytearray(64 * 2**20)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def test_keep_freed_memory_on_this_c_library():
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True).stdout.split("\n")
    description, faults = out[0], int(out[1])
    if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc":
        assert description.startswith("glibc ") and "M_MMAP_MAX=0" in description and "M_TRIM_THRESHOLD" in description
        assert faults < 1000  # 64 MiB faulted in anew would be 16 384 pages of 4 KiB
    else:
        assert description == "None"  # other C libraries are left alone
