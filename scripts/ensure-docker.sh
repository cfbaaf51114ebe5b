#!/usr/bin/env bash
# Make sure a Docker engine is usable: start (and, as root on Debian/Ubuntu, install) one if needed.
#   scripts/ensure-docker.sh          # exit 0 when `docker info` works afterwards
# Env: BACKENDAI_HUB_STATE (default .state) holds dockerd.log; DOCKER_WAIT_S (default 60).
set -euo pipefail

state_dir="${BACKENDAI_HUB_STATE:-.state}"
wait_s="${DOCKER_WAIT_S:-60}"

docker_ok() { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; }

docker_ok && exit 0

distro=""
if [[ -r /etc/os-release ]]; then
  # shellcheck disable=SC1091
  distro="$(. /etc/os-release && echo "${ID:-} ${ID_LIKE:-}")"
fi
is_debian_like=0
case " $distro " in *" debian "*|*" ubuntu "*) is_debian_like=1 ;; esac

if [[ "$(id -u)" != 0 || "$is_debian_like" != 1 ]]; then
  echo "ensure-docker: no usable Docker engine ('docker info' fails)." >&2
  echo "  Install Docker Engine (Debian/Ubuntu: 'sudo apt-get install docker.io'; elsewhere see" >&2
  echo "  https://docs.docker.com/engine/install/), start it, and make sure this user may use" >&2
  echo "  /var/run/docker.sock (e.g. member of the 'docker' group). Then re-run." >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
  echo "ensure-docker: installing docker.io with apt-get ..." >&2
  apt-get update -qq >/dev/null
  apt-get install -y -qq docker.io >/dev/null
fi

# A daemon may be running but still starting (or a stale pidfile may be left): only start one
# when no dockerd process exists.
dockerd_running() { grep -qsx dockerd /proc/[0-9]*/comm; }
if ! dockerd_running; then
  mkdir -p "$state_dir"
  log="$state_dir/dockerd.log"
  echo "ensure-docker: starting dockerd (log: $log) ..." >&2
  # setsid + nohup: the daemon outlives this script and its terminal/session.
  setsid nohup dockerd >>"$log" 2>&1 </dev/null &
fi

for ((i = 0; i < wait_s; i++)); do
  docker_ok && exit 0
  sleep 1
done
echo "ensure-docker: dockerd did not answer within ${wait_s}s; see ${state_dir}/dockerd.log" >&2
exit 1
