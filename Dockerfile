# The five amqp-* tools and the tutorial's worker, static, in an image FROM scratch:
# no shell, no libc, no package manager; only the binaries and a CA bundle. The tools are one
# binary, /usr/bin/amqp-tools (~8 MB), with /usr/bin/amqp-publish, amqp-consume, ... as
# symbolic links to it (five separate static binaries would be ~36 MB).
#
# One file for linux/amd64 and linux/arm64: the build stage runs on the build machine's own
# platform and cross-compiles for the target's (scripts/build-static --arch, with zig), so no
# compiler runs emulated. The final stage only copies files, so it needs no emulation either.
#
#   docker build -t amqp-tools .                       # this machine's platform
#   docker buildx build --platform linux/amd64,linux/arm64 -t REGISTRY/amqp-tools:TAG --push .
#   docker run --rm --network host -e AMQP_URL=amqp://guest:guest@localhost:5672 \
#       amqp-tools -q job1 -c 1 /usr/bin/worker
#   docker run --rm --entrypoint /usr/bin/amqp-publish amqp-tools --url=... -r job1 -b apple
#
# There is no shell in the final image, so a shell-form CMD (`CMD amqp-consume --url=$BROKER_URL
# ...`) cannot run and nothing expands $VARIABLES: in Kubernetes use `$(VAR)` in `args` (the
# kubelet expands it), or set AMQP_URL, which every tool reads when no connection option is given.

ARG RUST_VERSION=1

# ---- build: static musl binaries for TARGETARCH, laid out as the final image's root in /rootfs ----
FROM --platform=$BUILDPLATFORM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
# musl-tools: musl-gcc, to compile the vendored OpenSSL natively; python3-pip: installs zig and
# cargo-zigbuild for a cross build; ca-certificates: the bundle we ship. Shared by both targets.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends musl-tools python3-pip ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# amd64 or arm64, set by the builder for each platform of --platform.
ARG TARGETARCH
# The toolchain in a layer of its own (the Rust target, and zig for a cross build), so that a
# change of the sources does not download it again.
COPY scripts/build-static scripts/build-static
RUN scripts/build-static --arch "$TARGETARCH" --libc musl --toolchain-only
COPY . .
# --libc musl: this stage installs everything musl needs, so a failure is a real one; never
# fall back to a (larger) static glibc build silently.
RUN scripts/build-static --arch "$TARGETARCH" --libc musl --out /rootfs/usr/bin \
 && mkdir -p /rootfs/etc/ssl/certs \
 && cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ca-certificates.crt

# ---- final: FROM scratch, for the target platform ----
FROM scratch
COPY --from=build /rootfs/ /
# OpenSSL's compiled-in default paths point into the build stage's install prefix, not here.
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    PATH=/usr/bin
# Numeric, so runAsNonRoot can verify it without an /etc/passwd.
USER 65532:65532
ENTRYPOINT ["/usr/bin/amqp-consume"]
CMD ["--help"]
