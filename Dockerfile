# Lectern server image (used by docker-compose.yml).
FROM golang:1.26-bookworm AS build
WORKDIR /src
# libopus through cgo: the programme's audio mix encodes and decodes Opus.
RUN apt-get update && apt-get install -y --no-install-recommends libopus-dev libopusfile-dev pkg-config && rm -rf /var/lib/apt/lists/*
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=1 go build -trimpath -o /lectern ./cmd/lectern

FROM debian:bookworm-slim
# ffmpeg decodes AAC from studio encoders and cameras (a process per track) for its
# Opus variant, which browsers play; without it such audio reaches RTSP readers only.
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libopus0 libopusfile0 ffmpeg && rm -rf /var/lib/apt/lists/*
# An unprivileged user: the server needs no root (its ports are above 1024; compose maps
# 80 and 443 onto them). /data is created owned by it, so a new volume is writable.
RUN useradd --system --uid 10001 --user-group --home-dir /data --shell /usr/sbin/nologin lectern \
    && mkdir -p /data && chown lectern:lectern /data && chmod 700 /data
COPY --from=build /lectern /usr/local/bin/lectern
USER lectern
VOLUME /data
ENV LECTERN_DATA_DIR=/data
# HTTP (or, with HTTPS on, the redirect and ACME HTTP-01), HTTPS, WebRTC (UDP, ICE-TCP),
# RTSP, RTSP media over UDP (RTP, RTCP).
EXPOSE 8080/tcp 8443/tcp 8189/udp 8189/tcp 8554/tcp 8000/udp 8001/udp
ENV LECTERN_HTTPS=:8443
# `lectern healthcheck` reads the same settings as the server (the image has no curl).
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 CMD ["/usr/local/bin/lectern", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/lectern"]
