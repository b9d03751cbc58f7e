# syntax=docker/dockerfile:1
# The confide image: the static binary and CA certificates, run as a non-root user.
#
#   docker build -t confide:0.1.0 --build-arg VERSION=0.1.0 .
#   docker run --rm confide:0.1.0 version
#
# deploy/helm/confide runs it on Kubernetes (README, "Deploy").

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# Modules first, so that a source change reuses the downloaded modules' layer.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=""
# CGO_ENABLED=0: a static binary (pure-Go SQLite, no libc), which the static base runs.
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags="-s -w -X main.version=${VERSION}" \
      -o /out/confide ./cmd/confide

# distroless/static: CA certificates, /etc/passwd with the nonroot user (65532), /tmp and
# time zone data; no shell, no package manager, no libc.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/confide /usr/local/bin/confide
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/confide"]
CMD ["--help"]
