"""What the ``[deep]`` extra (Keras 3 + JAX, the LSTM member) adds to an installation.

1. On disk, from the environment this runs in: every distribution that the ``deep`` extra
   pulls in and that the base install (with the ``test`` extra) does not, summed from the
   files each distribution's RECORD lists. Baseline in the same run: the base install.
2. With ``--pypi`` (needs the package index): the download sizes of the wheels this
   environment has, and of the alternative the issue names, PyTorch from PyPI, whose Linux
   wheel depends on the CUDA toolkit (PyTorch's CPU-only wheels are not on PyPI).

    .venv/bin/python bench/deep_footprint.py [--pypi]
"""

from __future__ import annotations

import argparse
import json
import re
import urllib.request
from importlib import metadata
from pathlib import Path

MB = 1e6


def _name(req: str) -> str:
    return re.split(r"[\s;<>=!~\[(]", req, maxsplit=1)[0].lower().replace("_", "-")


def closure(roots: list[str], extras: dict[str, set[str]]) -> set[str]:
    """Installed distributions reachable from ``roots`` (with the extras asked of each)."""
    seen: set[str] = set()
    todo = [(r, extras.get(r, set())) for r in roots]
    while todo:
        name, wanted = todo.pop()
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # a marker excluded it on this platform
        if name in seen and not wanted:
            continue
        seen.add(name)
        for req in dist.requires or []:
            marker = req.split(";", 1)[1] if ";" in req else ""
            extra = re.search(r"extra\s*==\s*['\"]([^'\"]+)", marker)
            if extra and extra.group(1) not in wanted:
                continue
            if "platform_system" in marker and "Linux" not in marker and "!=" not in marker:
                continue
            sub = re.search(r"\[([^\]]+)\]", req.split(";")[0])
            todo.append((_name(req), set(sub.group(1).split(",")) if sub else set()))
    return seen


def disk_mb(name: str) -> float:
    dist = metadata.distribution(name)
    total = 0
    for f in dist.files or []:
        path = Path(dist.locate_file(f))
        if path.is_file():
            total += path.stat().st_size
    return total / MB


def pypi_wheel_mb(name: str, version: str) -> float:
    """Size of the wheel pip picks here for ``name==version`` (cp312 or pure, manylinux
    x86_64), from the index's JSON simple API (PEP 691)."""
    req = urllib.request.Request(f"https://pypi.org/simple/{name}/",
                                 headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        files = json.load(resp)["files"]
    prefix = f"{name.replace('-', '_')}-{version}-".lower()
    fit = [f for f in files if f["filename"].lower().startswith(prefix)
           and f["filename"].endswith(".whl")
           and ("none-any" in f["filename"]
                or ("x86_64" in f["filename"] and "linux" in f["filename"]
                    and ("cp312" in f["filename"] or "abi3" in f["filename"]
                         or "py3-none" in f["filename"])))]
    return max((f.get("size") or 0 for f in fit), default=0) / MB


def pypi_latest(name: str) -> tuple[str, list[str]]:
    with urllib.request.urlopen(f"https://pypi.org/pypi/{name}/json", timeout=30) as resp:
        info = json.load(resp)["info"]
    return info["version"], info["requires_dist"] or []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pypi", action="store_true", help="also wheel sizes from PyPI")
    args = parser.parse_args()

    base = closure(["tinhieu"], {"tinhieu": {"test"}})
    full = closure(["tinhieu"], {"tinhieu": {"test", "deep"}})
    added = sorted(full - base)
    if not any(n in added for n in ("keras", "jax")):
        raise SystemExit("[LOI] the [deep] extra is not installed here: pip install -e '.[deep]'")
    rows = sorted(((disk_mb(n), n, metadata.version(n)) for n in added), reverse=True)
    base_mb = sum(disk_mb(n) for n in base)
    deep_mb = sum(r[0] for r in rows)
    print("[deep] extra on disk (distributions the base install does not have):")
    for size, name, version in rows:
        print(f"  {name:<22} {version:<12} {size:8.1f} MB")
    print(f"  {'total':<35} {deep_mb:8.1f} MB  (base install with [test]: {base_mb:.0f} MB, "
          f"deep = {deep_mb / base_mb:.2f} x base)")

    if args.pypi:
        print("wheels downloaded from PyPI (cp312, manylinux x86_64):")
        total = sum(pypi_wheel_mb(name, version) for _, name, version in rows)
        print(f"  [deep] as installed here: {total:.1f} MB of wheels for {deep_mb:.0f} MB on disk")
        version, reqs = pypi_latest("torch")
        size = pypi_wheel_mb("torch", version)
        cuda = [_name(r) for r in reqs if "Linux" in r and ("cuda" in r or "nvidia" in r)]
        print(f"  torch {version} (the alternative): its wheel alone {size:.0f} MB, and on "
              f"Linux it requires {len(cuda)} CUDA packages ({', '.join(cuda)})")

if __name__ == "__main__":
    main()
