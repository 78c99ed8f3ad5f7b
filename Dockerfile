# syntax=docker/dockerfile:1
# The proxy's image: docker build -t kafka-mtls-proxy:0.1.0 .
# (deploy/kubernetes/ runs it as `kafka-mtls-proxy run --config /etc/kafka-mtls-proxy/proxy.yaml`).

# Build: the toolchain the crate's rust-version names, the locked dependency versions.
FROM rust:1.89-bookworm AS build
WORKDIR /src
# What `cargo build` reads: the manifest names the benches, the patch points into vendor/.
COPY Cargo.toml Cargo.lock ./
COPY vendor vendor
COPY benches benches
COPY src src
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin kafka-mtls-proxy \
    && cp target/release/kafka-mtls-proxy /kafka-mtls-proxy

# Run: glibc and libgcc only, no shell, no package manager; user 65532 ("nonroot").
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /kafka-mtls-proxy /usr/local/bin/kafka-mtls-proxy
USER 65532:65532
# Bootstrap, the first broker ports, admin (see config/proxy.yaml).
EXPOSE 9092 9093 9644
ENTRYPOINT ["/usr/local/bin/kafka-mtls-proxy"]
# The configuration and the files it names are mounted there (a ConfigMap and a Secret).
CMD ["run", "--config", "/etc/kafka-mtls-proxy/proxy.yaml"]
