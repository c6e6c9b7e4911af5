#!/usr/bin/env bash
# Make sure a headless Chromium exists for the report's browser test (tests/test_report.py).
#
# If /usr/bin/chromium is missing and we are root on a machine with apt-get (the CI machines: root
# Debian), install Debian's `chromium` package quietly. Anywhere else this does nothing and says why; it
# never fails, so `make test` still runs (the browser test is then skipped with its reason, unless
# BONEBAYES_REQUIRE_BROWSER=1, in which case it fails).
set -u
CHROMIUM="${BONEBAYES_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$CHROMIUM" ]; then
    exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure_chromium: $CHROMIUM not found and cannot install it here (needs root and apt-get);" \
         "the browser test will be skipped" >&2
    exit 0
fi
echo "ensure_chromium: installing Debian's chromium package (apt-get, quiet)..." >&2
export DEBIAN_FRONTEND=noninteractive
if apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends chromium >/dev/null; then
    echo "ensure_chromium: installed $(command -v chromium)" >&2
else
    echo "ensure_chromium: apt-get could not install chromium; the browser test will be skipped" >&2
fi
exit 0
