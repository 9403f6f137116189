"""Contract fuzzing: schemathesis, driven by serving/openapi.yaml, against a server, longer than the suite's run
(tests/contract_suite.py: 20 examples per operation and phase).

Every phase (examples, coverage, fuzzing, stateful) and every check (server errors, schema conformance of every
answer, status codes, content types and headers the spec declares, RFC-required headers such as Allow on a 405,
acceptance of every request the schema allows, rejection of what it does not). A failure prints the curl command
that reproduces it; the JUnit report is written to --report-dir.

Usage: python scripts/fuzz_contract.py [URL] [--key KEY] [--preview] [--max-examples 200] [--max-time 600]
Without a URL it exports a quick run's bundle and starts its Go server with real Redis and PostgreSQL (--preview:
the Ray Serve preview instead), as scripts/soak.py does.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("YOLO_VERBOSE", "False")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from servers import go_server, preview_server  # noqa: E402

from tests.contract import fuzz  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url", nargs="?", help="a running server; without it one is started here")
    parser.add_argument("--key", help="API key of the running server (Authorization: Bearer)")
    parser.add_argument("--preview", action="store_true", help="start the Ray Serve preview, not the Go server")
    parser.add_argument("--max-examples", type=int, default=200, help="per operation and phase")
    parser.add_argument("--max-time", type=int, default=None, help="seconds; fuzzing repeats until it is spent")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--report-dir", type=Path, default=Path("schemathesis-report"))
    args = parser.parse_args()

    def run(url: str, headers: dict[str, str]) -> bool:
        print(f"fuzzing {url} ({args.max_examples} examples per operation and phase) ...", flush=True)
        ok, report = fuzz(url, headers, args.report_dir, args.max_examples, args.seed, args.max_time)
        print(report)
        print(f"GOAL contract_failures: {0 if ok else 'some'} (target 0) {'PASS' if ok else 'FAIL'}")
        return ok

    if args.url:
        run(args.url.rstrip("/"), {"Authorization": f"Bearer {args.key}"} if args.key else {})
        return 0
    with tempfile.TemporaryDirectory(prefix="fuzz_contract_") as tmp:
        start = preview_server if args.preview else go_server
        with start(Path(tmp)) as served:
            run(served.url, served.headers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
