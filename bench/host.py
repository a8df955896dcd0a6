"""The one line every benchmark report gives about the machine it ran on: host name, cores,
CPU model, kernel and load average (figures from a loaded shared machine say so)."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def host_line() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{platform.node()}: {os.cpu_count()} cores ({model}), Linux {platform.release()}, "
        f"load average {load}"
    )
