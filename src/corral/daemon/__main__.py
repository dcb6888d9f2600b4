"""``python -m corral.daemon``: start the job launcher first, while this process is still
small (see :mod:`corral.executors.local.launcher`), then the daemon."""

import sys

from ..executors.local.launcher import Launcher

launcher = Launcher.start()

from .server import main  # noqa: E402  (imported after the fork on purpose)

sys.exit(main(launcher=launcher))
