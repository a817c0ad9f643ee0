# Slim, non-root image. Build: docker build -t flywheel .
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway gateway
COPY exporters exporters
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 flywheel && mkdir -p /data && chown flywheel /data
COPY --from=build /install /usr/local
COPY config.yaml /etc/flywheel/config.yaml
USER flywheel
WORKDIR /home/flywheel
# No network at runtime is assumed: litellm must use its bundled price map.
ENV FLYWHEEL_CONFIG=/etc/flywheel/config.yaml \
    FLYWHEEL_DATABASE_URL=sqlite:////data/flywheel.db \
    LITELLM_LOCAL_MODEL_COST_MAP=True \
    PYTHONUNBUFFERED=1
VOLUME /data
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
CMD ["flywheel", "serve"]
