"""Write the Go server's environment overrides (`yoloforge-server config -list`, the server's own list) into
docs/bundle.md between its overrides markers, so the docs and the server cannot disagree. tests/test_gateway.py
fails while the docs are stale.

Usage: python scripts/make_docs_overrides.py
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "bundle.md"
BLOCK = re.compile(r"(<!-- overrides: yoloforge-server config -list -->\n)(.*?)(\n<!-- /overrides -->)", re.S)


def render(names: list[str]) -> str:
    return "\n".join(f"- `{name}`" for name in names)


def documented(text: str) -> list[str]:
    """The names the docs list between the markers."""
    found = BLOCK.search(text)
    return re.findall(r"`(YOLOFORGE_[A-Z0-9_]+)`", found.group(2)) if found else []


def main() -> int:
    sys.path.insert(0, str(ROOT))
    from yoloforge.serving.bundle import build_server

    listed = subprocess.run([str(build_server()), "config", "-list"], capture_output=True, text=True, check=True)
    names = [line.strip() for line in listed.stdout.splitlines() if line.strip()]
    text = DOCS.read_text()
    if not BLOCK.search(text):
        print(f"no overrides markers in {DOCS}", file=sys.stderr)
        return 1
    DOCS.write_text(BLOCK.sub(lambda m: m.group(1) + render(names) + m.group(3), text))
    print(f"{DOCS}: {len(names)} overrides")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
