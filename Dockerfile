# The five amqp-* tools and the tutorial's worker, static, in an image FROM scratch:
# no shell, no libc, no package manager; only the binaries and a CA bundle. The tools are one
# binary, /usr/bin/amqp-tools (~8 MB), with /usr/bin/amqp-publish, amqp-consume, ... as
# symbolic links to it (five separate static binaries would be ~36 MB).
#
#   docker build -t amqp-tools .
#   docker run --rm --network host -e AMQP_URL=amqp://guest:guest@localhost:5672 \
#       amqp-tools -q job1 -c 1 /usr/bin/worker
#   docker run --rm --entrypoint /usr/bin/amqp-publish amqp-tools --url=... -r job1 -b apple
#
# There is no shell in the final image, so a shell-form CMD (`CMD amqp-consume --url=$BROKER_URL
# ...`) cannot run and nothing expands $VARIABLES: in Kubernetes use `$(VAR)` in `args` (the
# kubelet expands it), or set AMQP_URL, which every tool reads when no connection option is given.

ARG RUST_VERSION=1

# ---- build: static musl binaries, laid out as the final image's root in /rootfs ----
FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
# musl-tools: musl-gcc, to compile the vendored OpenSSL; ca-certificates: the bundle we ship.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends musl-tools ca-certificates \
 && rm -rf /var/lib/apt/lists/*
RUN rustup target add "$(uname -m)-unknown-linux-musl"
WORKDIR /src
COPY . .
# --libc musl: this stage installs everything musl needs, so a failure is a real one; never
# fall back to a (larger) static glibc build silently.
RUN scripts/build-static --libc musl --out /rootfs/usr/bin \
 && mkdir -p /rootfs/etc/ssl/certs \
 && cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ca-certificates.crt

# ---- final: FROM scratch ----
FROM scratch
COPY --from=build /rootfs/ /
# OpenSSL's compiled-in default paths point into the build stage's install prefix, not here.
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    PATH=/usr/bin
# Numeric, so runAsNonRoot can verify it without an /etc/passwd.
USER 65532:65532
ENTRYPOINT ["/usr/bin/amqp-consume"]
CMD ["--help"]
