# GPU image for tinygrad_dot: the CLI on CUDA 12 through CuPy.
#   docker build -t tinygrad-dot .
#   docker run --gpus all tinygrad-dot bench
#   docker run --gpus all -v "$PWD/runs:/runs" tinygrad-dot train --dataset digits --device cuda --out /runs/digits
# The runtime image carries the CUDA shared libraries CuPy loads, NVRTC included
# (the kernels are compiled at run time); the driver comes from the host.
FROM nvidia/cuda:12.4.1-runtime-ubuntu22.04

RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1

WORKDIR /opt/tinygrad_dot
COPY . .
RUN pip install ".[cuda12,models,plot]"
# `bench` runs the training benchmark from the installed package and the GEMM
# benchmark, a script of the source tree, from this copy of it.
ENV TINYGRAD_DOT_BENCHMARKS_DIR=/opt/tinygrad_dot/benchmarks

ENTRYPOINT ["tinygrad-dot"]
CMD ["info"]
