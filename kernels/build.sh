#!/usr/bin/env bash
# Build the session images air-gapped, caching every step (see kernels/README.md).
#   bash kernels/build.sh        base + notebook
#   bash kernels/build.sh r      also the R image (backendai-hub/r: R, IRkernel, Shiny; RStudio Server
#                                when RSTUDIO_DEB is given or the base already has rserver)
# Env:
#   BUILD_R=1            same as the argument r
#   RSTUDIO_DEB          path of an RStudio Server .deb to build into the R image
#   BASE_IMAGE           use this local/registry image as the base instead of debootstrapping one
#                        (must have python3 >= 3.10 with the venv module + ensurepip, tini, glibc)
#   BACKENDAI_HUB_CACHE  cache dir (default .cache, relative to the repository root)
#   DEBIAN_SUITE         debootstrap suite (default bookworm); DEBIAN_MIRROR (default deb.debian.org)
#   REFRESH_WHEELS=1     re-resolve the wheelhouse even if requirements.txt did not change
#   PYTHON               host interpreter whose pip fills the wheelhouse (default python3)
#   SHELL_IMAGE=0        skip the web shell's image (backendai-hub/shell, kernels/shell/)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$root"

cache="${BACKENDAI_HUB_CACHE:-.cache}"
[[ "$cache" == /* ]] || cache="$root/$cache"
kcache="$cache/kernels"
wheelhouse="$cache/wheelhouse"
suite="${DEBIAN_SUITE:-bookworm}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
python="${PYTHON:-python3}"
base_packages="python3,python3-venv,ca-certificates,tini,procps"
nb_repo="backendai-hub/notebook"
nb_dir="$here/notebook"
hash_label="backendai-hub.input-hash"
recipe=1 # bump to invalidate every cached step
build_r="${BUILD_R:-0}"
for arg in "$@"; do
  case "$arg" in
    r) build_r=1 ;;
    *) printf '[build] error: unknown argument %s (expected: r)\n' "$arg" >&2; exit 2 ;;
  esac
done

export DOCKER_BUILDKIT=0 # classic builder: works on Docker 20.10 without buildx
export DEBIAN_FRONTEND=noninteractive

log() { printf '[build] %s\n' "$*" >&2; }
die() { printf '[build] error: %s\n' "$*" >&2; exit 1; }
sha() { sha256sum | cut -c1-16; }
label_of() { docker image inspect -f "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null || true; }
image_id() { docker image inspect -f '{{.Id}}' "$1" 2>/dev/null || true; }
is_root() { [[ "$(id -u)" == 0 ]]; }
# whether image $1 exists and was built from input hash $2
is_current() { [[ -n "$(image_id "$1")" && "$(label_of "$1" "$hash_label")" == "$2" ]]; }
# `docker build --network none` of context dir $2 as image $1, labelled with input hash $3, its log in
# $kcache/build-$4.log, the rest of the arguments passed on (--build-arg ...); the context is removed
# afterwards, and the image this build replaced too when nothing else uses it. Sets built_s (seconds).
build_image() {
  local tag="$1" ctx="$2" input="$3" logf="$kcache/build-$4.log" old_id new_id t0
  shift 4
  old_id="$(image_id "$tag")"
  log "docker build --network none $tag ..."
  t0=$SECONDS
  docker build --network none --pull=false "$@" --label "$hash_label=$input" -t "$tag" "$ctx" >"$logf" 2>&1 \
    || { tail -n 40 "$logf" >&2; die "docker build of $tag failed (log: $logf)"; }
  rm -rf "$ctx"
  built_s=$((SECONDS - t0))
  new_id="$(image_id "$tag")"
  if [[ -n "$old_id" && "$old_id" != "$new_id" ]]; then docker rmi "$old_id" >/dev/null 2>&1 || true; fi
}
# the session images' runtime settings (environment, labels, user, entry point), appended to the final
# stage of the notebook and R Dockerfiles: $1 the image's Dockerfile, $2 the context's
session_dockerfile() { cat "$1" "$here/session.dockerfile" >"$2"; }
is_debian_like() {
  local ids=""
  [[ -r /etc/os-release ]] && ids="$(. /etc/os-release && echo "${ID:-} ${ID_LIKE:-}")"
  case " $ids " in *" debian "*|*" ubuntu "*) return 0 ;; esac
  return 1
}

mkdir -p "$kcache"
t_start=$SECONDS

# One build at a time: the cache dirs and image tags are shared.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$cache/.build.lock"
  if ! flock -n 9; then
    log "another build holds $cache/.build.lock; waiting ..."
    flock -w 3600 9 || die "timed out waiting for the build lock"
  fi
else
  log "flock not found (util-linux); building without a lock"
fi

bash "$root/scripts/ensure-docker.sh" || die "no usable Docker engine (see above)"

# ---------------------------------------------------------------------------------------------
# a. base image
# ---------------------------------------------------------------------------------------------
base_status=""
rootfs=""
cleanup_rootfs() {
  [[ -n "$rootfs" && -d "$rootfs" ]] || return 0
  # debootstrap mounts proc/sys (and may bind /dev) inside the target: unmount before deleting.
  if command -v findmnt >/dev/null 2>&1; then
    { findmnt -R -n -l -o TARGET "$rootfs" 2>/dev/null || true; } | sort -r | while read -r m; do
      umount -l "$m" 2>/dev/null || true
    done
  fi
  rm -rf --one-file-system "$rootfs"
}
trap cleanup_rootfs EXIT

ensure_debootstrap() {
  if command -v debootstrap >/dev/null 2>&1 || [[ -x /usr/sbin/debootstrap ]]; then
    PATH="$PATH:/usr/sbin:/sbin"
    return 0
  fi
  if is_root && is_debian_like; then
    log "installing debootstrap with apt-get ..."
    apt-get update -qq >/dev/null
    apt-get install -y -qq debootstrap >/dev/null
    PATH="$PATH:/usr/sbin:/sbin"
  else
    die "debootstrap is missing: install it as root (Debian/Ubuntu: apt-get install debootstrap), or set BASE_IMAGE to an image with python3 >= 3.10 (venv), tini and glibc"
  fi
}

if [[ -n "${BASE_IMAGE:-}" ]]; then
  base="$BASE_IMAGE"
  if [[ -z "$(image_id "$base")" ]]; then
    log "pulling BASE_IMAGE=$base ..."
    docker pull -q "$base" >/dev/null || die "BASE_IMAGE=$base is neither local nor pullable"
  fi
  base_status="BASE_IMAGE=$base (not built here)"
else
  base="backendai-hub/base:$suite"
  base_hash="$(printf '%s\n' "$recipe" "$suite" "$mirror" minbase "$base_packages" | sha)"
  tarball="$kcache/base-$suite-$base_hash.tar"
  if [[ "$(label_of "$base" "$hash_label")" == "$base_hash" ]]; then
    base_status="cached (image $base, input $base_hash)"
  else
    if [[ -s "$tarball" ]]; then
      base_status="imported from cached $(basename "$tarball")"
    else
      is_root || die "debootstrap needs root; run as root or set BASE_IMAGE (see kernels/README.md)"
      ensure_debootstrap
      rootfs="$kcache/rootfs.tmp"
      cleanup_rootfs
      rootfs="$kcache/rootfs.tmp"
      log "debootstrap $suite from $mirror (minbase + $base_packages); takes a few minutes ..."
      t0=$SECONDS
      debootstrap --variant=minbase --include="$base_packages" "$suite" "$rootfs" "$mirror" \
        >"$kcache/debootstrap.log" 2>&1 \
        || { tail -n 30 "$kcache/debootstrap.log" >&2; die "debootstrap failed (log: $kcache/debootstrap.log)"; }
      # Trim: package lists and caches, docs, and host files that Docker provides at run time.
      rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin \
        "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/log/*.log "$rootfs"/var/log/apt/* \
        "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/etc/resolv.conf \
        "$rootfs"/etc/hostname
      find "$rootfs"/usr/share/doc -type f ! -name copyright -delete 2>/dev/null || true
      printf 'deb %s %s main\n' "$mirror" "$suite" >"$rootfs/etc/apt/sources.list"
      tar --numeric-owner -C "$rootfs" --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' \
        -cf "$tarball.tmp" .
      mv "$tarball.tmp" "$tarball"
      cleanup_rootfs
      rootfs=""
      # Older tarballs for other inputs are dead weight.
      find "$kcache" -maxdepth 1 -name "base-$suite-*.tar" ! -name "$(basename "$tarball")" -delete
      base_status="debootstrapped in $((SECONDS - t0))s, imported"
    fi
    log "docker import $(basename "$tarball") as $base ..."
    docker import \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'ENV LANG=C.UTF-8' \
      --change "LABEL $hash_label=$base_hash" \
      --change "LABEL org.opencontainers.image.description=\"Debian $suite minbase + $base_packages\"" \
      --change 'CMD ["/bin/bash"]' \
      --message "backendai-hub base ($suite, $base_hash)" \
      "$tarball" "$base" >/dev/null
  fi
fi
base_id="$(image_id "$base")"
[[ -n "$base_id" ]] || die "base image $base is missing after step a"

# Facts about the base image, cached per image id: distro label, python X.Y, glibc, arch.
probe="$kcache/probe-${base_id#sha256:}"
if [[ ! -s "$probe" ]]; then
  docker run --rm --network none --user 0 --entrypoint /bin/sh "$base" -c '
    set -e
    . /etc/os-release; echo "${ID}${VERSION_ID:-}"
    python3 -c "import sys, os, platform, venv, ensurepip
assert sys.version_info >= (3, 10), sys.version
print(\"%d.%d\" % sys.version_info[:2]); print(os.confstr(\"CS_GNU_LIBC_VERSION\").split()[1]); print(platform.machine())"
  ' >"$probe.tmp" 2>"$kcache/probe.err" \
    || { cat "$kcache/probe.err" >&2; rm -f "$probe.tmp"; die "base image $base needs /bin/sh, /etc/os-release, glibc and python3 >= 3.10 with venv+ensurepip"; }
  mv "$probe.tmp" "$probe"
fi
{ read -r base_distro; read -r pyver; read -r glibc; read -r arch; } <"$probe"
find "$kcache" -maxdepth 1 -name 'probe-*' ! -name "$(basename "$probe")" -delete

# ---------------------------------------------------------------------------------------------
# b. wheelhouse (filled on the host; the image build never touches the network)
# ---------------------------------------------------------------------------------------------
req="$nb_dir/requirements.txt"
glibc_minor="${glibc#2.}"
platforms=()
for ((m = glibc_minor; m >= 17; m--)); do platforms+=(--platform "manylinux_2_${m}_${arch}"); done
platforms+=(--platform "manylinux2014_${arch}")
wh_hash="$( { echo "$recipe"; cat "$req"; echo "$pyver ${platforms[*]}"; } | sha)"
wh_stamp="$wheelhouse/.stamp"
if [[ "${REFRESH_WHEELS:-0}" != 1 && -s "$wh_stamp" && "$(cat "$wh_stamp")" == "$wh_hash" ]]; then
  wh_status="cached ($(find "$wheelhouse" -name '*.whl' | wc -l) wheels, input $wh_hash)"
else
  "$python" -m pip --version >/dev/null 2>&1 || die "$python -m pip is not available on the host (install python3-pip)"
  log "pip download for cp${pyver/./} ${arch} glibc ${glibc} into $wheelhouse ..."
  t0=$SECONDS
  rm -rf "$wheelhouse.tmp"
  mkdir -p "$wheelhouse.tmp" "$wheelhouse"
  # --find-links the old wheelhouse: unchanged pins are copied locally instead of re-downloaded.
  "$python" -m pip download -qq --progress-bar off --disable-pip-version-check \
    --dest "$wheelhouse.tmp" --find-links "$wheelhouse" \
    --only-binary=:all: --implementation cp --python-version "$pyver" --abi "cp${pyver/./}" \
    "${platforms[@]}" -r "$req" \
    || { rm -rf "$wheelhouse.tmp"; die "pip download failed"; }
  echo "$wh_hash" >"$wheelhouse.tmp/.stamp"
  rm -rf "$wheelhouse.old"
  mv "$wheelhouse" "$wheelhouse.old"
  mv "$wheelhouse.tmp" "$wheelhouse"
  rm -rf "$wheelhouse.old"
  wh_status="downloaded $(find "$wheelhouse" -name '*.whl' | wc -l) wheels in $((SECONDS - t0))s"
fi

# ---------------------------------------------------------------------------------------------
# c. notebook image (docker build --network none)
# ---------------------------------------------------------------------------------------------
nb_tag="$nb_repo:latest"
alias_tag="$nb_repo:python$pyver"
# the session-side package (session/: code-log capture), as a wheel made with the stdlib only
session_wheels="$kcache/session-wheel"
rm -rf "$session_wheels"
"$python" "$root/session/make_wheel.py" "$session_wheels" >/dev/null || die "could not build the session wheel"
# the JupyterLab extension (labextension/: planned-stop warnings), built here with Node, prebuilt in its wheel
labext_wheels="$kcache/labextension-wheel"
rm -rf "$labext_wheels"
LABEXT_CACHE="$kcache/labextension-cache" bash "$root/labextension/build.sh" "$labext_wheels" >/dev/null \
  || die "could not build the labextension wheel (labextension/build.sh)"
nb_hash="$( {
  echo "$recipe $base_id $base_distro $pyver"
  cat "$nb_dir/Dockerfile" "$here/session.dockerfile" "$req" "$nb_dir/code-log-banner.sh"
  (cd "$wheelhouse" && find . -name '*.whl' -printf '%P %s\n' | LC_ALL=C sort)
  cat "$session_wheels"/*.whl "$labext_wheels"/*.whl
} | sha)"
if is_current "$nb_tag" "$nb_hash"; then
  nb_status="cached (input $nb_hash)"
else
  ctx="$kcache/context-notebook"
  rm -rf "$ctx"
  mkdir -p "$ctx/wheels"
  session_dockerfile "$nb_dir/Dockerfile" "$ctx/Dockerfile"
  cp "$req" "$nb_dir/code-log-banner.sh" "$ctx/"
  cp "$session_wheels"/*.whl "$labext_wheels"/*.whl "$ctx/wheels/"
  # Hard links keep the context free to assemble; fall back to copies across filesystems.
  cp -l "$wheelhouse"/*.whl "$ctx/wheels/" 2>/dev/null || cp "$wheelhouse"/*.whl "$ctx/wheels/"
  build_image "$nb_tag" "$ctx" "$nb_hash" notebook \
    --build-arg BASE_IMAGE="$base" --build-arg BASE_DISTRO="$base_distro" --build-arg PYTHON_VERSION="$pyver"
  nb_status="built in ${built_s}s (input $nb_hash)"
fi
docker tag "$nb_tag" "$alias_tag"

# ---------------------------------------------------------------------------------------------
# c2. R image (only when asked): kernels/r-image.sh
# ---------------------------------------------------------------------------------------------
r_status=""
if [[ "$build_r" == 1 ]]; then
  # shellcheck source=r-image.sh
  . "$here/r-image.sh"
fi

# ---------------------------------------------------------------------------------------------
# c3. shell image (the web shell's CLI image; SHELL_IMAGE=0 skips it)
# ---------------------------------------------------------------------------------------------
sh_status="skipped (SHELL_IMAGE=0)"
sh_tag="backendai-hub/shell:latest"
build_shell_image() {
  local sh_dir="$here/shell" debs="$kcache/shell-debs" wh="$cache/wheelhouse-shell" ctx="$kcache/context-shell"
  local host_distro pkgs sh_hash
  host_distro="$(. /etc/os-release && echo "${ID}${VERSION_ID:-}")"
  # the .debs come from the host's apt: it must be the base image's release
  [[ "$host_distro" == "$base_distro" ]] || die "the shell image's packages are fetched with the host's apt, \
which is $host_distro, not the base image's $base_distro: build on a $base_distro host or set SHELL_IMAGE=0"
  pkgs="$(grep -v '^#' "$sh_dir/packages.txt" | xargs)"
  # 1. Debian packages and their dependencies that the base image lacks, fetched once
  local deb_hash
  deb_hash="$( { echo "$recipe $base_id apt-status"; echo "$pkgs"; } | sha)"
  if [[ ! -s "$debs/.stamp" || "$(cat "$debs/.stamp")" != "$deb_hash" ]]; then
    log "apt-get download (shell packages: $pkgs) ..."
    # apt resolves against the base image's own dpkg status: exactly what the base lacks, upgrades included
    rm -rf "$debs.tmp"; mkdir -p "$debs.tmp/partial"
    docker run --rm --network none --user 0 --entrypoint cat "$base" /var/lib/dpkg/status >"$debs.tmp/status"
    local apt_get=(apt-get -qq -o Dir::State::status="$debs.tmp/status" -o Dir::Cache::archives="$debs.tmp"
                   -o APT::Install-Recommends=false --download-only -y install)
    # shellcheck disable=SC2086
    "${apt_get[@]}" $pkgs >"$kcache/apt-download.log" 2>&1 \
      || { is_root && apt-get update -qq >/dev/null && "${apt_get[@]}" $pkgs >"$kcache/apt-download.log" 2>&1; } \
      || { tail -n 20 "$kcache/apt-download.log" >&2; die "apt-get --download-only failed (log: $kcache/apt-download.log)"; }
    rm -rf "$debs.tmp/partial" "$debs.tmp/lock" "$debs.tmp/status"
    echo "$deb_hash" >"$debs.tmp/.stamp"
    rm -rf "$debs"; mv "$debs.tmp" "$debs"
  fi
  # 2. Python wheels: the official client for the image's python/glibc/arch, and our package from here
  local wh_in
  wh_in="$( { echo "$recipe $pyver ${platforms[*]}"; cat "$sh_dir/requirements.txt" "$sh_dir/notebook.txt" "$root/setup.cfg" "$root/pyproject.toml";
             find "$root/backendai_hub" -type f \( -name '*.py' -o -name '*.json' -o -name '*.html' -o -name '*.yaml' -o -name '*.mako' \) \
               -print0 | LC_ALL=C sort -z | xargs -0 cat; } | sha)"
  if [[ ! -s "$wh/.stamp" || "$(cat "$wh/.stamp")" != "$wh_in" ]]; then
    log "shell wheelhouse (backend.ai-client, backendai-hub) ..."
    rm -rf "$wh.tmp"; mkdir -p "$wh.tmp" "$wh"
    # pip wheel on the host (some of the client's dependencies are sources only): the host runs the
    # base image's release, so its python and glibc are the image's (checked above and here)
    [[ "$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" == "$pyver" ]] \
      || die "the shell wheelhouse is built with $python, which is not python $pyver (the image's): set PYTHON"
    # three resolutions, each installed on its own: the client's venv, ours, Notebook 7 into the session venv
    local what
    for what in "-r $sh_dir/requirements.txt" "$root" "-r $sh_dir/notebook.txt"; do
      # shellcheck disable=SC2086
      "$python" -m pip wheel -qq --disable-pip-version-check -w "$wh.tmp" --find-links "$wh" $what \
        >"$kcache/shell-wheel.log" 2>&1 \
        || { tail -n 20 "$kcache/shell-wheel.log" >&2; die "pip wheel $what failed (log: $kcache/shell-wheel.log)"; }
    done
    echo "$wh_in" >"$wh.tmp/.stamp"
    rm -rf "$wh"; mv "$wh.tmp" "$wh"
  fi
  # 3. the image, on the notebook image just built
  sh_hash="$( { echo "$recipe $(image_id "$nb_tag")"; cat "$sh_dir"/*; cat "$debs/.stamp" "$wh/.stamp"; } | sha)"
  if is_current "$sh_tag" "$sh_hash"; then
    sh_status="cached (input $sh_hash)"
    return 0
  fi
  rm -rf "$ctx"; mkdir -p "$ctx/debs" "$ctx/cli-wheels"
  cp "$sh_dir"/Dockerfile "$sh_dir"/*.txt "$sh_dir"/*.conf "$sh_dir"/*.py "$sh_dir"/*.json "$ctx/"
  cp -l "$debs"/*.deb "$ctx/debs/" 2>/dev/null || cp "$debs"/*.deb "$ctx/debs/"
  cp -l "$wh"/*.whl "$ctx/cli-wheels/" 2>/dev/null || cp "$wh"/*.whl "$ctx/cli-wheels/"
  build_image "$sh_tag" "$ctx" "$sh_hash" shell --build-arg NOTEBOOK_IMAGE="$nb_tag"
  sh_status="built in ${built_s}s (input $sh_hash)"
}
if [[ "${SHELL_IMAGE:-1}" != 0 ]]; then build_shell_image; fi

# ---------------------------------------------------------------------------------------------
# d. summary
# ---------------------------------------------------------------------------------------------
summary() { # image -> "id size"
  docker image inspect -f '{{.Id}} {{.Size}}' "$1" | awk '{ printf "%s %.0f MB", substr($1, 8, 12), $2 / 1e6 }'
}
printf '[build] done in %ds (cache: %s)\n' "$((SECONDS - t_start))" "$cache"
printf '  base      %-36s %s  %s\n' "$base" "$(summary "$base")" "$base_status"
printf '  wheels    %-36s %s\n' "${wheelhouse#"$root"/}" "$wh_status"
printf '  notebook  %-36s %s  %s\n' "$nb_tag, :python$pyver" "$(summary "$nb_tag")" "$nb_status"
printf '            %s, python %s, glibc %s, %s\n' "$base_distro" "$pyver" "$glibc" "$arch"
if [[ -n "$r_status" ]]; then
  printf '  r         %-36s %s  %s\n' "$r_tag" "$(summary "$r_tag")" "$r_status"
fi
if [[ "${SHELL_IMAGE:-1}" != 0 ]]; then
  printf '  shell     %-36s %s  %s\n' "$sh_tag" "$(summary "$sh_tag")" "$sh_status"
fi
