# latch: a multi-stage build. The builder compiles the release binary (templates and logos
# are compiled into it); the runtime image is debian-slim with ca-certificates and latch.
#
#   docker build -t latch .
#   docker run -p 3000:3000 -v $PWD/providers.toml:/etc/latch/providers.toml:ro latch
#
# docker-compose.yml at the top of the repository runs it with Redis and a demo app.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS builder
WORKDIR /src

# Dependencies first, in their own layer: it is rebuilt only when Cargo.toml or Cargo.lock
# change. Stub sources stand in for the crate (the test target must exist for cargo to read
# the manifest).
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src tests/it \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs tests/it/main.rs \
 && cargo build --release --locked \
 && rm -rf src

# The crate itself.
COPY src ./src
COPY templates ./templates
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked \
 && install -m 0755 target/release/latch /usr/local/bin/latch

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/latch --create-home \
      --shell /usr/sbin/nologin latch \
 && mkdir -p /etc/latch
COPY --from=builder /usr/local/bin/latch /usr/local/bin/latch
# The image has no curl: the health check is one HTTP/1.0 GET over bash's /dev/tcp.
COPY deploy/latch/healthcheck /usr/local/bin/latch-healthcheck

# The config is mounted at /etc/latch/providers.toml; a sqlite:// store path relative to it
# would not be writable, so point such a store at /var/lib/latch (the working directory).
WORKDIR /var/lib/latch
USER latch:latch
ENV LATCH_LISTEN=0.0.0.0:3000 \
    LATCH_HEALTHCHECK_ADDR=127.0.0.1:3000 \
    LATCH_HEALTHCHECK_PATH=/healthz
EXPOSE 3000
# LATCH_HEALTHCHECK_PATH is base_path + "/healthz" (docker-compose.yml sets /auth/healthz).
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["latch-healthcheck"]
ENTRYPOINT ["latch"]
CMD ["serve", "--config", "/etc/latch/providers.toml"]
