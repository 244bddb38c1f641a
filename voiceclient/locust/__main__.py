"""`python -m voiceclient.locust [Locust's options]`: Locust with the ready locustfile
(`voiceclient/locust/locustfile.py`); every option is Locust's (`--headless`, `-u`, `--host`, `--master`...)."""

from __future__ import annotations

import sys
from pathlib import Path

from locust.main import main

LOCUSTFILE = Path(__file__).resolve().with_name("locustfile.py")

if __name__ == "__main__":
    sys.argv = [sys.argv[0], "-f", str(LOCUSTFILE), *sys.argv[1:]]
    main()  # type: ignore[no-untyped-call]  # (Locust's main has no annotations)
