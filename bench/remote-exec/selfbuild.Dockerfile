# The execution image for building stagefarm itself with Bazel's actions on
# a stagefarm farm (bench/remote-exec/run --self): Debian with the compiler
# and the -dev packages scripts/install-deps lists for the build.
FROM debian:bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      g++ nlohmann-json3-dev protobuf-compiler protobuf-compiler-grpc \
      libprotobuf-dev libgrpc++-dev libabsl-dev librocksdb-dev libssl-dev \
      libcli11-dev libgtest-dev libgmock-dev libarchive-dev libisal-dev \
      libdeflate-dev libzstd-dev zlib1g-dev libcurl4-openssl-dev \
      prometheus-cpp-dev nettle-dev liblzma-dev \
 && rm -rf /var/lib/apt/lists/*
