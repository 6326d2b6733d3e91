# mailcanary: build with the Rust toolchain, run on a slim Debian with the
# system's CA roots (TLS to providers and mailboxes is verified against them).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/mailcanary /etc/mailcanary \
 && chown 65534:65534 /var/lib/mailcanary
COPY --from=build /src/target/release/mailcanary /usr/local/bin/mailcanary
USER 65534:65534
EXPOSE 9925
VOLUME /var/lib/mailcanary
ENTRYPOINT ["mailcanary"]
CMD ["run", "--config", "/etc/mailcanary/probes.yaml"]
