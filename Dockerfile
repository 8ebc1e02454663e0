# seamark as a container image: one static binary on an empty (scratch) image.
#
#   docker build -t seamark .
#   docker build --build-arg VERSION=v0.1.0 -t seamark:v0.1.0 .
#   docker run --rm -p 127.0.0.1:9400:9400 -p 127.0.0.1:9453:9453/udp \
#       -p 127.0.0.1:9453:9453/tcp -v seamark-data:/var/lib/seamark seamark
#
# The server inside listens on all of the container's addresses (the only way
# a published port reaches it): publish the ports on 127.0.0.1 as above, or
# configure API tokens (docs/config.md, api.tokens) before publishing them
# anywhere else. Mount a config file and pass --config to use one:
#
#   docker run ... -v $PWD/seamark.yaml:/etc/seamark/seamark.yaml:ro \
#       seamark server --config /etc/seamark/seamark.yaml \
#       --http-addr 0.0.0.0:9400 --dns-addr 0.0.0.0:9453 --data-dir /var/lib/seamark
#
# Listener ports in the config must be published too (-p 9001:9001, or
# --network host for thousands of ports). See docs/install.md.

ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION}-bookworm AS build
ARG VERSION=dev
WORKDIR /src
ENV CGO_ENABLED=0 GOTOOLCHAIN=local
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN go build -trimpath \
      -ldflags "-s -w -X github.com/seamark/seamark/internal/cli.Version=${VERSION}" \
      -o /out/seamark ./cmd/seamark \
 && mkdir -p /out/data /out/tmp && chmod 1777 /out/tmp

FROM scratch
# CA certificates: for an external etcd over https and https hooks.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/seamark /usr/local/bin/seamark
COPY --from=build --chown=65532:65532 /out/data /var/lib/seamark
COPY --from=build /out/tmp /tmp
USER 65532:65532
VOLUME /var/lib/seamark
EXPOSE 9400/tcp 9453/tcp 9453/udp
ENTRYPOINT ["/usr/local/bin/seamark"]
CMD ["server", "--http-addr", "0.0.0.0:9400", "--dns-addr", "0.0.0.0:9453", "--data-dir", "/var/lib/seamark"]
