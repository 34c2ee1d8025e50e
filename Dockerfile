# wasiserve: the echo guest (echo.wasm) served by hostharness.
#
#   docker build -t wasiserve . && docker run --rm -p 8080:8080 wasiserve
#   curl -d echo localhost:8080                                   # prints: echo
#
# Targets:
#   (default)  FROM scratch: a static, pure-Go hostharness with the wasiserve
#              engine (wazero with wasiserve's own socket layer: no CPU while
#              idle, unlike plain wazero), run as a non-root user (65532).
#   wasmtime   docker build --target wasmtime -t wasiserve:wasmtime .
#              hostharness with embedded wasmtime 19 (cgo) on distroless/cc
#              (glibc), run as its nonroot user.
#   wasm       docker build --target wasm --platform wasi/wasm -t wasiserve:wasm .
#              FROM scratch with only echo-wasmedge.wasm, the guest's variant for
#              the WasmEdge socket extensions, for Docker's WasmEdge runtime:
#              docker run --rm --runtime=io.containerd.wasmedge.v1 --platform=wasi/wasm \
#                -e LISTEN_ADDR=0.0.0.0:8080 -p 8080:8080 wasiserve:wasm
#
# Both run scripts/build.sh, the same script CI runs, so CI proves what the
# images contain. The command (CMD) is "--engine=NAME /echo.wasm": serve
# another guest by mounting it and naming it (with the binary's default engine):
#   docker run --rm -p 8080:8080 -v $PWD/app.wasm:/app.wasm:ro wasiserve /app.wasm

ARG GO_IMAGE=golang:1.26-bookworm

# ---- build: echo.wasm + static hostharness (wazero) ----
FROM ${GO_IMAGE} AS build
WORKDIR /src
COPY . .
# Cache mounts keep modules and build results across builds; the default
# target downloads no cgo-only module (wasmtime-go is ~230 MB).
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    scripts/build.sh --out /out image
# /rootfs/cache becomes /cache, the compilation cache owned by the runtime
# user: scratch has no HOME and no /tmp, so hostharness gets --cache-dir.
RUN mkdir -p /rootfs/cache && chown 65532:65532 /rootfs/cache

# ---- build-wasmtime: echo.wasm + cgo hostharness (wasmtime + wazero) ----
FROM build AS build-wasmtime
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    scripts/build.sh --out /out image-wasmtime

# ---- wasmtime: embedded wasmtime 19 on a small glibc base ----
FROM gcr.io/distroless/cc-debian12:nonroot AS wasmtime
COPY --from=build-wasmtime /out/hostharness /hostharness
COPY --from=build-wasmtime /out/echo.wasm /echo.wasm
COPY --from=build --chown=65532:65532 /rootfs/ /
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/hostharness", "serve", "--listen=0.0.0.0:8080", "--cache-dir=/cache"]
CMD ["--engine=wasmtime", "/echo.wasm"]

# ---- build-wasm: the echo guest's variant for the WasmEdge socket extensions ----
FROM ${GO_IMAGE} AS build-wasm
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    scripts/build.sh --out /out wasm-wasmedge

# ---- wasm: only the .wasm, run by the runtime itself (WasmEdge) ----
# The guest binds LISTEN_ADDR with the socket extensions; GET /fetch?url=...
# dials out wherever the runtime lets it.
FROM scratch AS wasm
COPY --from=build-wasm /out/echo-wasmedge.wasm /echo-wasmedge.wasm
ENV LISTEN_ADDR=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["/echo-wasmedge.wasm"]

# ---- default: scratch, static hostharness with the wasiserve engine (pure Go, on wazero) ----
FROM scratch
COPY --from=build /out/hostharness /hostharness
COPY --from=build /out/echo.wasm /echo.wasm
COPY --from=build --chown=65532:65532 /rootfs/ /
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/hostharness", "serve", "--listen=0.0.0.0:8080", "--cache-dir=/cache"]
CMD ["--engine=wazy", "/echo.wasm"]
