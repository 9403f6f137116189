"""yoloforge: the CLI, job spec, model zoo, dataset intake and pipeline stages."""

import os as _os

# Ultralytics may try to pip-install missing modules or reach its hub; yoloforge wants neither to happen
# behind a user's back (and offline it would hang). Users can still override both.
_os.environ.setdefault("YOLO_AUTOINSTALL", "false")
_os.environ.setdefault("YOLO_OFFLINE", "true")
