# Lectern server image (used by docker-compose.yml).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /lectern ./cmd/lectern

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /lectern /usr/local/bin/lectern
VOLUME /data
ENV LECTERN_DATA_DIR=/data
EXPOSE 8080/tcp 8189/udp 8189/tcp 8554/tcp
ENTRYPOINT ["/usr/local/bin/lectern"]
