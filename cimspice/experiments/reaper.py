"""The reaper of one Dask worker's simulators (see :mod:`cimspice.experiments.worker_setup`).

Run as a script, ``python -I -S reaper.py TAG`` (it imports nothing of cimspice: it starts in
milliseconds). It reads its stdin, whose write end only the worker holds, until EOF: the worker
closed it (plugin teardown) or exited, even by SIGKILL. Then it SIGKILLs every process whose
environment carries ``CIMSPICE_WORKER_TAG=TAG`` (the worker's simulators and their children;
the reaper itself is started without the tag), in two passes in case one forked in between.
Linux /proc only.
"""

import os
import signal
import sys

TAG_ENV = "CIMSPICE_WORKER_TAG"


def reap(tag: str) -> int:
    """SIGKILL the processes tagged ``tag``; returns how many were signalled."""
    needle = f"{TAG_ENV}={tag}".encode()
    n = 0
    for _ in range(2):
        for d in os.listdir("/proc"):
            if not d.isdigit() or int(d) == os.getpid():
                continue
            try:
                with open(f"/proc/{d}/environ", "rb") as f:
                    if needle in f.read().split(b"\0"):
                        os.kill(int(d), signal.SIGKILL)
                        n += 1
            except OSError:  # gone, or not ours to read
                pass
    return n


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C on the terminal is not for it
    try:
        while os.read(0, 4096):
            pass
    except OSError:
        pass
    reap(sys.argv[1])


if __name__ == "__main__":
    main()
