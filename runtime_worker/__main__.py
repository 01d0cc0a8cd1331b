"""`python -m runtime_worker`: the same command as `yoi runtime` (see `runtime_worker.command`).

Exit status: 0 after a graceful stop, 1 when a member loop failed, 2 for bad configuration.
"""

from runtime_worker.command import main

main()
