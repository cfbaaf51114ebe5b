# Step c2 of kernels/build.sh (sourced; uses its variables and helpers): the R image.
# The .debs are fetched on the host with apt-get --download-only against the notebook image's own dpkg
# status (so exactly the closure the image lacks), cached per input, and installed in a
# `docker build --network none`.
r_repo="backendai-hub/r"
r_tag="$r_repo:latest"
r_dir="$here/r"
r_packages="r-base-core r-recommended r-cran-irkernel r-cran-shiny"
r_cache="$kcache/r"
mkdir -p "$r_cache"

rstudio_deb=""
if [[ -n "${RSTUDIO_DEB:-}" ]]; then
  [[ -s "$RSTUDIO_DEB" ]] || die "RSTUDIO_DEB=$RSTUDIO_DEB is not a file"
  rstudio_deb="$(cd "$(dirname "$RSTUDIO_DEB")" && pwd)/$(basename "$RSTUDIO_DEB")"
fi
nb_id="$(image_id "$nb_tag")"
# what the notebook image already has: R (e.g. a rocker BASE_IMAGE), rserver
r_probe="$r_cache/probe-${nb_id#sha256:}"
if [[ ! -s "$r_probe" ]]; then
  docker run --rm --network none --user 0 --entrypoint /bin/sh "$nb_tag" -c '
    command -v R || echo -
    command -v rserver || { [ -x /usr/lib/rstudio-server/bin/rserver ] && echo /usr/lib/rstudio-server/bin/rserver; } || echo -
  ' >"$r_probe.tmp" || { rm -f "$r_probe.tmp"; die "could not probe $nb_tag"; }
  mv "$r_probe.tmp" "$r_probe"
fi
find "$r_cache" -maxdepth 1 -name 'probe-*' ! -name "$(basename "$r_probe")" -delete
{ read -r have_r; read -r have_rserver; } <"$r_probe"

debs_hash="$( { echo "$recipe $nb_id $suite $r_packages"; [[ -z "$rstudio_deb" ]] || sha256sum <"$rstudio_deb"; } | sha)"
debs="$r_cache/debs-$debs_hash"
if [[ "$have_r" != - && -z "$rstudio_deb" ]]; then
  debs_status="none: the base already has R ($have_r)"
  mkdir -p "$debs"
elif [[ -s "$debs/.done" ]]; then
  debs_status="cached ($(find "$debs" -name '*.deb' | wc -l) .debs, input $debs_hash)"
else
  is_root || die "fetching the R .debs uses apt-get as root; run as root"
  is_debian_like || die "fetching the R .debs needs a Debian $suite host's apt-get"
  host_suite="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"
  [[ "$host_suite" == "$suite" ]] || die "the host is Debian '$host_suite', the images '$suite': apt-get here cannot resolve their packages"
  log "apt-get --download-only $r_packages${rstudio_deb:+ + $(basename "$rstudio_deb")} against $nb_tag's dpkg status ..."
  t0=$SECONDS
  rm -rf "$debs.tmp"
  mkdir -p "$debs.tmp/archives/partial"
  docker run --rm --network none --user 0 --entrypoint cat "$nb_tag" /var/lib/dpkg/status >"$debs.tmp/status"
  want=($r_packages)
  if [[ -n "$rstudio_deb" ]]; then want+=("$rstudio_deb"); fi
  [[ "$have_r" == - ]] || want=("$rstudio_deb")
  apt-get -qq -o Dir::State::status="$debs.tmp/status" -o Dir::Cache::archives="$debs.tmp/archives" \
    -o Debug::NoLocking=1 -o APT::Sandbox::User=root --no-install-recommends --download-only -y \
    install "${want[@]}" >"$r_cache/apt.log" 2>&1 \
    || { tail -n 20 "$r_cache/apt.log" >&2; rm -rf "$debs.tmp"; die "apt-get download failed (log: $r_cache/apt.log; try apt-get update)"; }
  mkdir -p "$debs.tmp/debs"
  mv "$debs.tmp"/archives/*.deb "$debs.tmp/debs/" 2>/dev/null || true
  [[ -z "$rstudio_deb" ]] || cp "$rstudio_deb" "$debs.tmp/debs/"
  rm -rf "$debs"
  mv "$debs.tmp/debs" "$debs"
  rm -rf "$debs.tmp"
  date -u +%FT%TZ >"$debs/.done"
  find "$r_cache" -maxdepth 1 -name 'debs-*' ! -name "$(basename "$debs")" -exec rm -rf {} +
  debs_status="fetched $(find "$debs" -name '*.deb' | wc -l) .debs in $((SECONDS - t0))s"
fi

with_rstudio=0
if [[ -n "$rstudio_deb" || "$have_rserver" != - ]]; then with_rstudio=1; fi
service_ports="jupyterlab:http:8888,shiny:http:3838"
[[ "$with_rstudio" == 0 ]] || service_ports+=",rstudio:http:8787"
r_path="/usr/bin/R"
[[ "$have_r" == - ]] || r_path="$have_r"
r_hash="$( {
  echo "$recipe $nb_id $base_distro $pyver $service_ports $r_path"
  cat "$r_dir/Dockerfile" "$here/session.dockerfile" "$r_dir/kernel.json"
  (cd "$debs" && find . -name '*.deb' -printf '%P %s\n' | LC_ALL=C sort)
} | sha)"
if is_current "$r_tag" "$r_hash"; then
  r_status="cached (input $r_hash; $debs_status)"
else
  ctx="$kcache/context-r"
  rm -rf "$ctx"
  mkdir -p "$ctx/debs"
  session_dockerfile "$r_dir/Dockerfile" "$ctx/Dockerfile"
  cp "$r_dir/kernel.json" "$ctx/"
  find "$debs" -name '*.deb' -exec cp -l {} "$ctx/debs/" \; 2>/dev/null || find "$debs" -name '*.deb' -exec cp {} "$ctx/debs/" \;
  what="R"; [[ "$with_rstudio" == 0 ]] || what="R + RStudio Server"
  log "the R image: $what"
  build_image "$r_tag" "$ctx" "$r_hash" r \
    --build-arg NOTEBOOK_IMAGE="$nb_tag" --build-arg BASE_DISTRO="$base_distro" --build-arg PYTHON_VERSION="$pyver" \
    --build-arg SERVICE_PORTS="$service_ports" --build-arg RUNTIME_PATH="$r_path"
  r_status="built in ${built_s}s (input $r_hash; $debs_status; service ports $service_ports)"
fi
