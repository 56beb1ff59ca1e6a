# picker-server and picker-cli on Debian 12 (bookworm).
#
#   docker build -t picker .
#   docker run --rm -p 50051:50051 -p 127.0.0.1:50052:50052 -p 9464:9464 picker
#
# The default command serves the data plane on :50051, the admin API on
# :50052 without a token (--admin-insecure: inside the container the admin
# listener must bind every interface to be published at all; publish it on
# the host's loopback only, as above, or set --admin-token-file instead),
# metrics on :9464, keeps its store in the /var/lib/picker volume and creates
# the `demo` upstream. tests/client/container_command_test.py runs this exact
# command line (ports rewritten to 127.0.0.1:0) against the freshly built
# picker-server, so a flag that stops existing fails a test before an image.

# ---- build ----
FROM debian:bookworm AS build
# The APT_PACKAGES of scripts/install-deps.sh (tests/client checks that every
# one of them is here).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      cmake g++ pkg-config make \
      libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler grpc-proto \
      libabsl-dev prometheus-cpp-dev libxxhash-dev libspdlog-dev libfmt-dev libyaml-cpp-dev \
      libcpp-httplib-dev \
      libgtest-dev libgmock-dev libbenchmark-dev \
      python3-grpcio python3-protobuf curl ca-certificates \
      libcurl4-openssl-dev \
      golang-etcd-server-dev golang-github-gogo-protobuf-dev golang-github-gogo-googleapis-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Only what the server and client builds read (tests and benchmarks are off).
COPY CMakeLists.txt ./
COPY cmake cmake
COPY protos protos
COPY server server
COPY client client
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DPICKER_BUILD_TESTS=OFF -DPICKER_BUILD_BENCH=OFF \
 && cmake --build build -j"$(nproc)" --target picker-server picker-cli \
 && strip build/picker-server build/picker-cli

# ---- run ----
FROM debian:bookworm-slim
# The shared libraries picker-server and picker-cli load (tests/client derives
# them with ldd from the built binaries and checks each is listed here).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libgrpc++1.51 libgrpc29 libprotobuf32 libabsl20220623 libc-ares2 libre2-9 libssl3 zlib1g \
      libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0 libcivetweb1 libcpp-httplib0.11 libbrotli1 \
      libxxhash0 libspdlog1.10 libfmt9 libyaml-cpp0.7 libcurl4 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home-dir /var/lib/picker --shell /usr/sbin/nologin picker \
 && mkdir -p /var/lib/picker && chown picker:picker /var/lib/picker
COPY --from=build /src/build/picker-server /src/build/picker-cli /usr/local/bin/
USER picker
VOLUME /var/lib/picker
EXPOSE 50051 50052 9464
# grpc.health.v1 on the data port, through picker-cli (exit 0 when SERVING).
# tests/client/container_command_test.py runs this command against the
# server it starts.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/picker-cli", "healthcheck", "--addr", "127.0.0.1:50051"]
# SIGTERM drains (health NOT_SERVING, in-flight calls finish) and exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/picker-server"]
CMD ["--listen", "0.0.0.0:50051", "--admin-listen", "0.0.0.0:50052", "--admin-insecure", "--metrics-listen", "0.0.0.0:9464", "--data-dir", "/var/lib/picker", "--demo"]
