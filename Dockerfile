# pollama as a container, used like Ollama's image:
#
#   docker build -t pollama .
#   docker run -d -v pollama:/home/pollama/.ollama -p 127.0.0.1:11434:11434 --name pollama pollama
#   docker exec -it pollama pollama run smollm2:135m
#
# NVIDIA GPUs (CUDA 12, needs the NVIDIA Container Toolkit on the host):
#
#   docker build --target cuda -t pollama:cuda .
#   docker run -d --gpus=all -v pollama:/home/pollama/.ollama -p 127.0.0.1:11434:11434 pollama:cuda
#
# The server listens on 0.0.0.0:11434 inside the container and serves without API keys
# (OLLAMA_ALLOW_INSECURE=1), as Ollama's image does: publish the port on 127.0.0.1 as above, or
# set OLLAMA_API_KEYS before publishing it anywhere else (keys, once set, are always required).
#
# llama.cpp is compiled with GGML_NATIVE=OFF (x86-64 with AVX2, or the arm64 baseline) so the
# image runs on other CPUs than the one that built it; for a build tuned to this machine:
#   docker build --build-arg CMAKE_ARGS="-DGGML_NATIVE=ON" -t pollama .
# and with GGML_RPC=on, as `make install` builds it, so `pollama worker` and OLLAMA_RPC_SERVERS work.
#
# Debian and Ubuntu packages are not pinned to versions (hadolint DL3008): the base image's
# release decides them, and exact versions disappear from the mirrors with each security update.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG CUDA_VERSION=12.6.3

# -- CPU: build -------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/*
ARG CMAKE_ARGS=""
ENV CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_RPC=on ${CMAKE_ARGS}"
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN python -m venv /opt/pollama \
    && /opt/pollama/bin/pip install --no-cache-dir .

# -- CUDA: build (llama.cpp with its CUDA backend) ----------------------------------------------
FROM nvidia/cuda:${CUDA_VERSION}-devel-ubuntu24.04 AS cuda-builder
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv python3-dev \
        build-essential cmake \
    && rm -rf /var/lib/apt/lists/*
ARG CMAKE_ARGS=""
ENV CMAKE_ARGS="-DGGML_CUDA=on -DGGML_NATIVE=OFF -DGGML_RPC=on ${CMAKE_ARGS}"
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN python3 -m venv /opt/pollama \
    && /opt/pollama/bin/pip install --no-cache-dir .

# -- CUDA: run --------------------------------------------------------------------------------
FROM nvidia/cuda:${CUDA_VERSION}-runtime-ubuntu24.04 AS cuda
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && userdel --remove ubuntu \
    && useradd --create-home --uid 1000 --user-group --shell /usr/sbin/nologin pollama \
    && mkdir -p /home/pollama/.ollama \
    && chown pollama:pollama /home/pollama/.ollama
COPY --from=cuda-builder /opt/pollama /opt/pollama
ENV PATH=/opt/pollama/bin:$PATH \
    HOME=/home/pollama \
    OLLAMA_HOST=0.0.0.0:11434 \
    OLLAMA_ALLOW_INSECURE=1 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
USER 1000:1000
WORKDIR /home/pollama
VOLUME ["/home/pollama/.ollama"]
EXPOSE 11434
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["python3", "-c", "import httpx; from pollama.config import Config; httpx.get(Config.from_env().host.url + '/', timeout=5, trust_env=False).raise_for_status()"]
ENTRYPOINT ["pollama"]
CMD ["serve"]

# -- CPU: run (the default target) ---------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS cpu
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1000 --user-group --shell /usr/sbin/nologin pollama \
    && mkdir -p /home/pollama/.ollama \
    && chown pollama:pollama /home/pollama/.ollama
COPY --from=builder /opt/pollama /opt/pollama
ENV PATH=/opt/pollama/bin:$PATH \
    HOME=/home/pollama \
    OLLAMA_HOST=0.0.0.0:11434 \
    OLLAMA_ALLOW_INSECURE=1
# Fail the build, not the first request, if a library llama.cpp needs is missing here.
RUN python -c "import llama_cpp, pollama.server.app"
USER 1000:1000
WORKDIR /home/pollama
VOLUME ["/home/pollama/.ollama"]
EXPOSE 11434
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import httpx; from pollama.config import Config; httpx.get(Config.from_env().host.url + '/', timeout=5, trust_env=False).raise_for_status()"]
ENTRYPOINT ["pollama"]
CMD ["serve"]
