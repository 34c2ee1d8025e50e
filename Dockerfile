# wasiserve: the echo guest (echo.wasm) served by hostharness.
#
#   docker build -t wasiserve . && docker run --rm -p 8080:8080 wasiserve
#   curl -d echo localhost:8080                                   # prints: echo
#
# Targets:
#   (default)  FROM scratch: a static, pure-Go hostharness with the wazy
#              engine (wazy, a fork of wazero, with the project's socket
#              layer: no CPU while idle), run as a non-root user (65532).
#   wasmtime   docker build --target wasmtime -t wasiserve:wasmtime .
#              hostharness with embedded wasmtime (cgo) on a glibc base
#              (RUNTIME_IMAGE, distroless/cc), run as its nonroot user (65532).
#   wasm       docker build --target wasm --platform wasi/wasm -t wasiserve:wasm .
#              FROM scratch with only echo-wasmedge.wasm, the guest's variant for
#              the WasmEdge socket extensions, for Docker's WasmEdge runtime:
#              docker run --rm --runtime=io.containerd.wasmedge.v1 --platform=wasi/wasm \
#                -e LISTEN_ADDR=0.0.0.0:8080 -p 8080:8080 wasiserve:wasm
#
# Every stage runs scripts/build.sh, the same script CI runs, so CI proves what
# the images contain. The guest is compiled while the image is built
# (hostharness compile) into /cache, so a fresh container answers at once, also
# with --read-only. The command (CMD) is "--engine=NAME /echo.wasm": serve
# another guest by mounting it and naming it (with the binary's default engine):
#   docker run --rm -p 8080:8080 -v $PWD/app.wasm:/app.wasm:ro wasiserve /app.wasm
#
# Works with BuildKit and with the classic builder (no RUN --mount; the stages
# are in an order in which the classic builder, which runs every stage before
# the target, builds little more than needed for --target default and --target
# wasm: neither builds the wasmtime stages nor needs RUNTIME_IMAGE). Without a
# registry, build the bases locally and pass them (scripts/docker-bases.sh):
#   docker build --build-arg GO_IMAGE=... --target default -t wasiserve .
#   docker build --build-arg GO_IMAGE=... --build-arg RUNTIME_IMAGE=... --target wasmtime .
# (the classic builder needs RUNTIME_IMAGE too for "docker build ." without
# --target, which runs the wasmtime stages on its way to the last stage).
# GOPROXY, GOSUMDB and GOFLAGS pass through as build arguments for the module
# downloads (e.g. --network=host --build-arg GOPROXY="$(go env GOPROXY)").
# scripts/docker-build.sh is all of that in one command (it installs
# debootstrap when missing): scripts/docker-build.sh [--target T]...
#
# Health: the serving images run an admin listener on 0.0.0.0:9090 (--admin:
# /livez, /readyz, /metrics; not published unless -p names it) and declare a
# HEALTHCHECK that runs the image's own binary, "hostharness probe", against
# /readyz there: scratch has no shell or curl. docker ps shows "healthy" once
# every guest instance is ready, whatever the guest (it needs no health route
# of its own); /readyz answers 503 while the host stops. (The wasm target has no
# HEALTHCHECK: it holds nothing but the module, no program to run one.)
# Labels: org.opencontainers.image.*, with VERSION and REVISION as build
# arguments.

ARG GO_IMAGE=golang:1.26-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot
# The images' org.opencontainers.image.* labels (scripts/docker-build.sh passes
# VERSION and REVISION from git; LICENSES is an SPDX expression, NOASSERTION
# while the project states none).
ARG VERSION=dev
ARG REVISION=unknown
ARG SOURCE=https://github.com/wasiserve/wasiserve
ARG LICENSES=NOASSERTION

# ---- build: echo.wasm + static hostharness (wazy), the guest compiled for it ----
# The build stages run on the builder's platform, also for --platform wasi/wasm.
FROM --platform=${BUILDPLATFORM:-linux/amd64} ${GO_IMAGE} AS build
ARG GOPROXY
ARG GOSUMDB
ARG GOFLAGS
WORKDIR /src
COPY . .
# The default target downloads no cgo-only module (wasmtime-go is ~230 MB).
RUN scripts/build.sh --out /out image
# /rootfs/cache becomes /cache, the compilation cache owned by the runtime
# user (scratch has no HOME and no /tmp, so hostharness gets --cache-dir),
# holding the echo guest compiled by the image's engine (CMD's --engine).
RUN /out/hostharness compile --engine=wazy --cache-dir=/rootfs/cache /out/echo.wasm

# ---- default: scratch, static hostharness with the wazy engine (pure Go) ----
FROM scratch AS default
COPY --from=build /out/hostharness /hostharness
COPY --from=build /out/echo.wasm /echo.wasm
COPY --from=build --chown=65532:65532 /rootfs/ /
USER 65532:65532
EXPOSE 8080 9090
ARG VERSION
ARG REVISION
ARG SOURCE
ARG LICENSES
LABEL org.opencontainers.image.title="wasiserve" \
      org.opencontainers.image.description="wasip1 HTTP guests served by a static, pure-Go hostharness (wazy engine); the echo guest by default" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="${LICENSES}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
HEALTHCHECK --interval=5s --timeout=3s --start-period=60s --retries=3 \
    CMD ["/hostharness", "probe", "--timeout=2s", "http://127.0.0.1:9090/readyz"]
ENTRYPOINT ["/hostharness", "serve", "--listen=0.0.0.0:8080", "--admin=0.0.0.0:9090", "--cache-dir=/cache"]
CMD ["--engine=wazy", "/echo.wasm"]

# ---- build-wasm: the echo guest's variant for the WasmEdge socket extensions ----
FROM --platform=${BUILDPLATFORM:-linux/amd64} build AS build-wasm
RUN scripts/build.sh --out /out wasm-wasmedge

# ---- wasm: only the .wasm, run by the runtime itself (WasmEdge) ----
# The guest binds LISTEN_ADDR with the socket extensions; GET /fetch?url=...
# dials out wherever the runtime lets it.
FROM scratch AS wasm
COPY --from=build-wasm /out/echo-wasmedge.wasm /echo-wasmedge.wasm
ENV LISTEN_ADDR=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["/echo-wasmedge.wasm"]

# ---- build-wasmtime: echo.wasm + cgo hostharness (wasmtime + wazy) ----
FROM --platform=${BUILDPLATFORM:-linux/amd64} build AS build-wasmtime
RUN scripts/build.sh --out /out image-wasmtime
RUN /out/hostharness compile --engine=wasmtime --cache-dir=/rootfs-wasmtime/cache /out/echo.wasm

# ---- wasmtime: embedded wasmtime on a small glibc base ----
FROM ${RUNTIME_IMAGE} AS wasmtime
COPY --from=build-wasmtime /out/hostharness /hostharness
COPY --from=build-wasmtime /out/echo.wasm /echo.wasm
COPY --from=build-wasmtime --chown=65532:65532 /rootfs-wasmtime/ /
USER 65532:65532
EXPOSE 8080 9090
ARG VERSION
ARG REVISION
ARG SOURCE
ARG LICENSES
LABEL org.opencontainers.image.title="wasiserve (wasmtime)" \
      org.opencontainers.image.description="wasip1 HTTP guests served by hostharness with embedded wasmtime; the echo guest by default" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="${LICENSES}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
HEALTHCHECK --interval=5s --timeout=3s --start-period=60s --retries=3 \
    CMD ["/hostharness", "probe", "--timeout=2s", "http://127.0.0.1:9090/readyz"]
ENTRYPOINT ["/hostharness", "serve", "--listen=0.0.0.0:8080", "--admin=0.0.0.0:9090", "--cache-dir=/cache"]
CMD ["--engine=wasmtime", "/echo.wasm"]

# ---- the image of "docker build ." (no --target): the default one ----
# It is the last stage, as docker build wants; --target default builds the
# same image without the wasmtime stages above, which the classic builder
# (it runs every stage before the target) would otherwise build too, with
# RUNTIME_IMAGE.
FROM default
