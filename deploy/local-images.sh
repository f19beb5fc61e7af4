#!/usr/bin/env bash
# Local STAND-INS, for machines without a container registry (offline CI, air-gapped hosts),
# for the images that Dockerfile and docker-compose.yml name. Elsewhere do not run this:
# podman/docker pull the official images from Docker Hub.
#
# Everything comes from the Debian mirror in this machine's apt sources (or DEBIAN_MIRROR):
#   debian:bookworm-slim         debootstrap --variant=minbase bookworm, docs and apt lists removed
#   rust:<X.Y>-slim-bookworm     that base + the C toolchain from apt + THIS machine's Rust
#                                toolchain (`rustc --print sysroot`) copied in; X.Y is its version;
#                                this machine's CA bundle (LATCH_CA_BUNDLE), so cargo's HTTPS works
#   redis:7                      Debian's redis-server (7.0), run as user redis in /data with
#                                protected mode off, like the official image's entrypoint
#   nginx:1.27                   Debian's nginx-light (1.22: auth_request, ssi), in the foreground,
#                                reading /etc/nginx/conf.d/*.conf, serving /usr/share/nginx/html
# They are tagged docker.io/library/<name>, so `FROM debian:bookworm-slim` and `image: redis:7`
# find them with --pull=never, and labelled latch.stand-in=true (`podman images --filter
# label=latch.stand-in=true`; remove them with `podman rmi` to go back to the official ones).
#
# Idempotent: an image that exists is skipped; the debootstrap result is cached as a tarball in
# LATCH_IMAGE_CACHE (default target/local-images). Needs root (debootstrap) and podman, e.g.
# `apt-get install -y podman runc debootstrap`. Uses deploy/podman/containers.conf unless
# CONTAINERS_CONF is set.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
export CONTAINERS_CONF=${CONTAINERS_CONF:-$repo/deploy/podman/containers.conf}
cache=${LATCH_IMAGE_CACHE:-$repo/target/local-images}
lib=docker.io/library
ca_bundle=${LATCH_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}

log() { echo "local-images: $*" >&2; }

# The first bookworm mirror (and security mirror) in the apt sources, one-line or deb822 style.
apt_uri() { # $1 = suite
  cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
    awk -v s="$1" '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i ~ /:\/\//) { if ($(i+1) == s) { print $i; exit } break } }'
  cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
    awk -v s="$1" 'BEGIN { RS = ""; FS = "\n" } {
      uri = ""; ok = 0
      for (i = 1; i <= NF; i++) {
        if ($i ~ /^URIs:/) { split($i, a, " "); uri = a[2] }
        if ($i ~ /^Suites:/) { n = split($i, b, " "); for (j = 2; j <= n; j++) if (b[j] == s) ok = 1 }
      }
      if (ok && uri != "") { print uri; exit }
    }'
}
mirror=${DEBIAN_MIRROR:-$(apt_uri bookworm | head -n 1)}
security=${DEBIAN_SECURITY_MIRROR:-$(apt_uri bookworm-security | head -n 1)}
[ -n "$mirror" ] || { log "no bookworm mirror in the apt sources; set DEBIAN_MIRROR"; exit 1; }

exists() { podman image exists "$lib/$1"; }
description="local stand-in built by latch deploy/local-images.sh from $mirror"
label=(--label latch.stand-in=true --label "org.opencontainers.image.description=$description")

base_image() {
  local tarball=$cache/bookworm-minbase.tar root=$cache/rootfs
  if [ ! -f "$tarball" ]; then
    mkdir -p "$cache"
    # A half-finished debootstrap is never reused: the marker is written after it succeeds.
    if [ ! -f "$root/.debootstrap-done" ]; then
      rm -rf "$root"
      log "debootstrap bookworm minbase from $mirror (about 2 minutes)"
      debootstrap --variant=minbase bookworm "$root" "$mirror" >"$cache/debootstrap.log" 2>&1 ||
        { tail -n 20 "$cache/debootstrap.log" >&2; exit 1; }
      touch "$root/.debootstrap-done"
    fi
    # Slim like debian:*-slim: no docs, man pages or locales now or in later installs.
    cat >"$root/etc/dpkg/dpkg.cfg.d/slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
    # As in the official images: apt keeps no package caches, .debs or translations in a layer.
    cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Acquire::Languages "none";
EOF
    {
      echo "Types: deb"
      echo "URIs: $mirror"
      echo "Suites: bookworm bookworm-updates"
      echo "Components: main"
      echo "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg"
      if [ -n "$security" ]; then
        echo
        echo "Types: deb"
        echo "URIs: $security"
        echo "Suites: bookworm-security"
        echo "Components: main"
        echo "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg"
      fi
    } >"$root/etc/apt/sources.list.d/debian.sources"
    rm -f "$root/etc/apt/sources.list" "$root/etc/hostname" "$root/etc/resolv.conf" "$root/.debootstrap-done"
    find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
    rm -rf "$root"/usr/share/{man,info}/* "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin \
      "$root"/var/cache/apt/archives/*.deb "$root"/var/log/* "$root"/tmp/*
    find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
    tar -C "$root" --numeric-owner -cf "$tarball.part" .
    mv "$tarball.part" "$tarball"
    rm -rf "$root"
  fi
  log "importing $lib/debian:bookworm-slim"
  podman import --change 'CMD ["bash"]' --change "LABEL latch.stand-in=true" \
    --change "LABEL org.opencontainers.image.description=\"$description\"" \
    "$tarball" "$lib/debian:bookworm-slim" >/dev/null
}

# podman build with a Containerfile on stdin and $1 as the context.
build() { # $1 = context dir, $2 = tag, stdin = Containerfile
  podman build --pull=never "${label[@]}" -t "$2" -f - "$1" >&2
}

rust_image() { # $1 = tag
  local sysroot stage=$cache/rust-context
  sysroot=$(rustc --print sysroot)
  rm -rf "$stage" && mkdir -p "$stage"
  # The toolchain without its 800 MB of HTML docs (hard links when on the same file system).
  cp -al "$sysroot" "$stage/rust" 2>/dev/null || cp -a "$sysroot" "$stage/rust"
  rm -rf "$stage/rust/share/doc" "$stage/rust/share/man"
  # cargo fetches crates over HTTPS: the builder trusts what this machine trusts (its bundle
  # may hold a TLS-intercepting proxy's CA, as on sandboxed CI).
  cp "$ca_bundle" "$stage/ca-certificates.crt"
  # Like the official rust:*-slim images: gcc and libc6-dev, CARGO_HOME=/usr/local/cargo.
  build "$stage" "$1" <<EOF
FROM $lib/debian:bookworm-slim
RUN apt-get update \\
 && apt-get install -y --no-install-recommends ca-certificates gcc libc6-dev \\
 && rm -rf /var/lib/apt/lists/*
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY rust /usr/local/rust
ENV CARGO_HOME=/usr/local/cargo \\
    PATH=/usr/local/cargo/bin:/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
RUN mkdir -p /usr/local/cargo/bin && rustc --version && cargo --version
EOF
  rm -rf "$stage"
}

redis_image() {
  local stage=$cache/redis-context
  rm -rf "$stage" && mkdir -p "$stage"
  # The official entrypoint: a redis-server started as root drops to user redis; protected
  # mode is off (the official image compiles that default in) unless the arguments set it.
  cat >"$stage/docker-entrypoint.sh" <<'EOF'
#!/bin/sh
set -e
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then set -- redis-server "$@"; fi
if [ "$1" = redis-server ]; then
  case " $* " in *" --protected-mode "*) ;; *) set -- "$@" --protected-mode no ;; esac
  if [ "$(id -u)" = 0 ]; then
    find . \! -user redis -exec chown redis '{}' +
    exec setpriv --reuid=redis --regid=redis --init-groups "$@"
  fi
fi
exec "$@"
EOF
  chmod 0755 "$stage/docker-entrypoint.sh"
  build "$stage" "$lib/redis:7" <<EOF
FROM $lib/debian:bookworm-slim
RUN apt-get update \\
 && apt-get install -y --no-install-recommends redis-server \\
 && rm -rf /var/lib/apt/lists/* \\
 && mkdir /data && chown redis:redis /data
COPY docker-entrypoint.sh /usr/local/bin/
VOLUME /data
WORKDIR /data
ENTRYPOINT ["docker-entrypoint.sh"]
EXPOSE 6379
CMD ["redis-server"]
EOF
  rm -rf "$stage"
}

nginx_image() {
  local stage=$cache/nginx-context
  rm -rf "$stage" && mkdir -p "$stage"
  # The official image's default site; a mounted conf.d/default.conf replaces it.
  cat >"$stage/default.conf" <<'EOF'
server {
    listen       80;
    server_name  localhost;
    location / {
        root   /usr/share/nginx/html;
        index  index.html index.htm;
    }
}
EOF
  build "$stage" "$lib/nginx:1.27" <<EOF
FROM $lib/debian:bookworm-slim
RUN apt-get update \\
 && apt-get install -y --no-install-recommends nginx-light \\
 && rm -rf /var/lib/apt/lists/* /etc/nginx/sites-enabled/* \\
 && mkdir -p /usr/share/nginx/html \\
 && ln -sf /dev/stdout /var/log/nginx/access.log \\
 && ln -sf /dev/stderr /var/log/nginx/error.log
COPY default.conf /etc/nginx/conf.d/default.conf
EXPOSE 80
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
EOF
  rm -rf "$stage"
}

rust_version=$(rustc --version | awk '{ split($2, v, "."); print v[1] "." v[2] }')
rust_tag=$lib/rust:$rust_version-slim-bookworm
dockerfile_version=$(sed -n 's/^ARG RUST_VERSION=//p' "$repo/Dockerfile")
if [ "$rust_version" != "$dockerfile_version" ]; then
  log "note: this machine's Rust is $rust_version, the Dockerfile's RUST_VERSION is $dockerfile_version:" \
    "build with --build-arg RUST_VERSION=$rust_version"
fi

exists debian:bookworm-slim && log "debian:bookworm-slim exists" || base_image
exists "rust:$rust_version-slim-bookworm" && log "rust:$rust_version-slim-bookworm exists" || rust_image "$rust_tag"
exists redis:7 && log "redis:7 exists" || redis_image
exists nginx:1.27 && log "nginx:1.27 exists" || nginx_image
podman images --filter label=latch.stand-in=true --filter dangling=false
