"""The load generator's command line (yoloforge.serving.loadgen, where the export stage also measures the bundle).

Usage: python scripts/loadgen.py http://127.0.0.1:8000 --concurrency 8 --duration 10 [--images DIR]
       [--rps 100] [--api-key KEY] [--json out.json]
"""

from yoloforge.serving.loadgen import main

if __name__ == "__main__":
    raise SystemExit(main())
