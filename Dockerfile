# imgpro: API + CDN transform origin in one image.
#   docker build -t imgpro .
#   docker run -p 8080:8080 -v imgpro-data:/data imgpro                 # imgpro serve
#   docker run -p 8080:8080 imgpro serve --workers 4 --role cdn         # any serve flags
#   docker run -v imgpro-data:/data imgpro accounts list                # operator commands
# Configuration is the IMGPRO_* environment (README, "Configuration").

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# -- build: install the project and its runtime dependencies (no dev extra) into a venv --------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/imgpro
WORKDIR /src
COPY pyproject.toml README.md ./
COPY api/ api/
COPY transformer/ transformer/
COPY cache/ cache/
# Every dependency ships a manylinux wheel except pyvips, whose sdist builds in pure-Python
# (ABI) mode against the libvips bundled in pyvips-binary: no compiler or system libvips needed.
RUN /opt/imgpro/bin/pip install --no-cache-dir . \
    && /opt/imgpro/bin/imgpro --help > /dev/null

# -- runtime: the venv only, as an unprivileged user ---------------------------------------------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="imgpro" \
      org.opencontainers.image.description="Self-hosted img.pro-compatible image hosting API and transform origin" \
      org.opencontainers.image.licenses="MIT"

RUN groupadd --system --gid 10001 imgpro \
    && useradd --system --uid 10001 --gid imgpro --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin imgpro \
    && mkdir -p /data \
    && chown imgpro:imgpro /data

COPY --from=build /opt/imgpro /opt/imgpro

# MALLOC_ARENA_MAX=2, MALLOC_MMAP_THRESHOLD_=1 MiB: glibc malloc fragments badly under
# many-threaded image work; big decode buffers from mmap go back to the system when freed.
# MALLOC_TOP_PAD_=16 MiB: freed heap top is kept for the next miss instead of faulting in
# again (api.serving.server.tune_malloc has the measurement).
# IMGPRO_HOST=0.0.0.0: inside a container the published port arrives on eth0, not loopback.
ENV PATH="/opt/imgpro/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MALLOC_ARENA_MAX=2 \
    MALLOC_MMAP_THRESHOLD_=1048576 \
    MALLOC_TOP_PAD_=16777216 \
    IMGPRO_HOST=0.0.0.0 \
    IMGPRO_PORT=8080 \
    IMGPRO_DATA_DIR=/data

USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080

# No curl in a slim image: the interpreter we ship does the check (non-2xx or no answer -> 1).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('IMGPRO_PORT', '8080'), timeout=4)"]

# Exec form: imgpro is PID 1 and receives SIGTERM itself for a graceful shutdown.
ENTRYPOINT ["imgpro"]
CMD ["serve"]
