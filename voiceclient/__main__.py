"""`python -m voiceclient`: the command line."""

import sys

from voiceclient.app.cli import main

sys.exit(main())
