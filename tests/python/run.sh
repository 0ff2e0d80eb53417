#!/bin/sh
# Run a NumPy cross-check with the first python3 that can import numpy; exit 77
# (Meson's "skipped") with a message when none can.
for py in "${SDL_PYTHON:-}" python3 /usr/bin/python3; do
    [ -n "$py" ] || continue
    if "$py" -c 'import numpy' >/dev/null 2>&1; then
        exec "$py" "$@"
    fi
done
echo "SKIP: no python3 with NumPy found (apt-get install python3-numpy to run this test)" >&2
exit 77
