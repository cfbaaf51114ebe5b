#!/usr/bin/env bash
# Make sure Debian's Chromium is installed for the browser tests; print its path.
set -euo pipefail
for c in "${CHROMIUM:-}" /usr/bin/chromium /usr/bin/chromium-browser; do
  [ -n "$c" ] && [ -x "$c" ] && { echo "$c"; exit 0; }
done
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "ensure-chromium: installing chromium from Debian's packages" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2
  echo /usr/bin/chromium
  exit 0
fi
echo "ensure-chromium: Chromium is not installed. Install it (e.g. 'apt-get install chromium' as root)" \
     "or set CHROMIUM to its path." >&2
exit 1
