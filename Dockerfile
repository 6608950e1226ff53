# syntax=docker/dockerfile:1

ARG GO_VERSION=1.26

# Build static writer and flusher binaries.
FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src

COPY go.mod go.sum ./
RUN go mod download

COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/ ./cmd/writer ./cmd/flusher

# Minimal runtime image: no shell, runs as an unprivileged user.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/writer /out/flusher /usr/local/bin/
# Numeric, so the kubelet can verify runAsNonRoot (it refuses a user name).
# 65532 is distroless's nonroot user.
USER 65532:65532
# Prometheus metrics.
EXPOSE 9090
ENTRYPOINT ["/usr/local/bin/flusher"]
CMD ["run"]
