#!/bin/sh
# The image's entrypoint. A configuration error (exit 2) must not become a restart loop under
# `restart: unless-stopped`: say it once and hold still (the HEALTHCHECK reports unhealthy)
# until someone fixes the settings and restarts the container. Any other exit is Docker's to
# handle as usual, so the daemon still comes back after a crash or a host reboot.
liquidityhelper "$@"
status=$?
if [ "$status" -eq 2 ] && [ "${1:-run}" = "run" ]; then
    echo "liquidityhelper: configuration error (see the line above); fix the settings, then" \
         "restart the container. Holding still instead of restarting." >&2
    exec sleep infinity
fi
exit "$status"
