# syntax=docker/dockerfile:1.7
# Multi-stage build: a static musl binary on a distroless, non-root base with nothing else in it.
# The operator needs no shell, no libc and no CA bundle (provider roots are compiled in).

# Build arguments: RUST_VERSION picks the toolchain image; TARGET the musl target triple.
ARG RUST_VERSION=1.95
FROM rust:${RUST_VERSION}-bookworm AS build
ARG TARGET=x86_64-unknown-linux-musl
# musl-tools follows the base image's Debian release; pinning it would break on every point release.
# hadolint ignore=DL3008
RUN rustup target add "${TARGET}" \
 && apt-get update && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
# Every workspace member's manifest must be present; each stage builds only its binary and libraries.
COPY crates ./crates
COPY src ./src
# Cache mounts keep the registry and target directory between builds without baking them into a layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --target "${TARGET}" -p keysmith --bin keysmith \
 && cp "target/${TARGET}/release/keysmith" /keysmith

# The data plane, keysmith-gateway: `docker build --target gateway .` (same base, same user).
FROM build AS gateway-build
ARG TARGET=x86_64-unknown-linux-musl
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --target "${TARGET}" -p keysmith-gateway --bin keysmith-gateway \
 && cp "target/${TARGET}/release/keysmith-gateway" /keysmith-gateway

FROM gcr.io/distroless/static-debian12:nonroot AS gateway
COPY --from=gateway-build /keysmith-gateway /usr/local/bin/keysmith-gateway
USER 65532:65532
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/keysmith-gateway"]

# The operator: the default (last) stage.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /keysmith /usr/local/bin/keysmith
# 65532 is the distroless "nonroot" user; a numeric USER lets runAsNonRoot verify it without /etc/passwd.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/keysmith"]
CMD ["run"]
