# Slim, non-root image. Build: docker build -t flywheel .
# Dependencies come from uv.lock (hashes checked), the same way deploy/install-locked.sh installs
# them for tests/test_image.py, which proves the result without a container engine.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN pip install uv==0.13.8
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
COPY gateway gateway
COPY exporters exporters
COPY deploy/install-locked.sh deploy/
RUN deploy/install-locked.sh /opt/flywheel

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 flywheel && mkdir -p /data && chown flywheel /data
COPY --from=build /opt/flywheel /opt/flywheel
# Listens on 0.0.0.0 so `docker run -p` reaches it, hence requires FLYWHEEL_APP_KEY (see the file).
COPY deploy/config.image.yaml /etc/flywheel/config.yaml
USER flywheel
WORKDIR /home/flywheel
# No network at runtime is assumed: litellm must use its bundled price map.
ENV PATH=/opt/flywheel/bin:$PATH \
    FLYWHEEL_CONFIG=/etc/flywheel/config.yaml \
    FLYWHEEL_DATABASE_URL=sqlite:////data/flywheel.db \
    LITELLM_LOCAL_MODEL_COST_MAP=True \
    PYTHONUNBUFFERED=1
VOLUME /data
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
CMD ["flywheel", "serve"]
