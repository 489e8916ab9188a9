# Multi-stage build: compile in the Rust image, run from a slim Debian.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin pushgate

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home /var/lib/pushgate pushgate \
    && mkdir -p /var/lib/pushgate && chown pushgate /var/lib/pushgate
COPY --from=build /src/target/release/pushgate /usr/local/bin/pushgate
USER pushgate
WORKDIR /var/lib/pushgate
ENV PUSHGATE_LISTEN=0.0.0.0:8080 \
    DATABASE_URL=sqlite:///var/lib/pushgate/pushgate.db
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD curl -fsS http://127.0.0.1:8080/readyz || exit 1
ENTRYPOINT ["pushgate"]
CMD ["serve"]
