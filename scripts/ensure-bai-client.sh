#!/usr/bin/env bash
# Make sure .venv-bai holds the official backend.ai-client (for wire-compatibility tests); print its python.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${BAI_CLIENT_VENV:-.venv-bai}"
PYTHON="${PYTHON:-python3}"
# yarl 1.17.1 turned URL._val into a plain tuple; the client's auth.generate_signature reads
# endpoint._val.netloc and crashes with anything newer (its own metadata allows yarl<2).
REQUIREMENTS=("backend.ai-client>=23.9,<23.10" "yarl>=1.8.2,<1.17.1")
REQUIREMENT="${REQUIREMENTS[*]}"
STAMP="$VENV/.requirement"

if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$REQUIREMENT" ]; then
  echo "$(cd "$VENV" && pwd)/bin/python"
  exit 0
fi
echo "ensure-bai-client: installing $REQUIREMENT into $VENV" >&2
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV" >&2
"$VENV/bin/python" -m pip install -q "${REQUIREMENTS[@]}" >&2
# a real signature, so a client/yarl mismatch shows here and not as a puzzling test failure
"$VENV/bin/python" - >&2 <<'EOF'
from datetime import datetime, timezone
from yarl import URL
from ai.backend.client.auth import generate_signature
generate_signature(method="GET", version="v7.20230615", endpoint=URL("http://127.0.0.1:8000/x"),
                   date=datetime.now(timezone.utc), rel_url="/x/", content_type="text/plain",
                   access_key="AKIA", secret_key="secret", hash_type="sha256")
EOF
printf '%s' "$REQUIREMENT" >"$STAMP"
echo "$(cd "$VENV" && pwd)/bin/python"
