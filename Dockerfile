# Build the manager binary. `make build` runs the same go build locally.
FROM golang:1.26 AS builder
ARG TARGETOS
ARG TARGETARCH

WORKDIR /workspace
# Cache the modules before copying the source.
COPY go.mod go.mod
COPY go.sum go.sum
RUN go mod download

COPY cmd/manager/ cmd/manager/
COPY api/ api/
COPY internal/ internal/

# CGO off: the binary runs on distroless/static.
RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags="-s -w" -o manager ./cmd/manager

# distroless static, nonroot: no shell, no package manager, UID 65532.
FROM gcr.io/distroless/static:nonroot
WORKDIR /
COPY --from=builder /workspace/manager .
USER 65532:65532

ENTRYPOINT ["/manager"]
