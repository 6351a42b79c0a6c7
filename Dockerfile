# syntax=docker/dockerfile:1
# gemini-chunk-proxy: gunicorn with gevent workers. Build: docker build -t gemini-chunk-proxy .
# Run: see deploy/docker-compose.yml (nginx in front, Prometheus scraping, read-only root).

# -- Builder: every dependency as a wheel (the full image has compilers, for a missing wheel) ---
FROM python:3.11-bookworm AS builder
WORKDIR /build
COPY requirements.txt constraints.txt ./
RUN pip wheel --no-cache-dir --wheel-dir /wheels -r requirements.txt -c constraints.txt

# -- Runtime: the slim image, the wheels installed from the builder, no compilers --------------
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PORT=1231 \
    PROMETHEUS_MULTIPROC_DIR=/tmp/gemini-proxy-metrics

# A fixed numeric uid, so volume permissions and Kubernetes' runAsNonRoot can rely on it.
# ("proxy" is taken: Debian has a system user of that name.)
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin gemini

WORKDIR /srv
COPY requirements.txt constraints.txt ./
# The wheels are mounted for this one step, so they never become a layer of the image.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links /wheels -r requirements.txt -c constraints.txt
# Readable by the runtime user whatever the umask of the checkout was.
COPY --chmod=0755 app/ app/
# The Gemini simulator (python -m simulator), so the image can be tried and tested without
# keys: the proxy never imports it, and the CMD does not start it.
COPY --chmod=0755 simulator/ simulator/
COPY --chmod=0644 wsgi.py gunicorn.conf.py ./

USER 10001
EXPOSE 1231
# The slim image has no curl: python's urllib asks /health (liveness only: no Gemini call).
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ['PORT'] + '/health', timeout=3)"]
CMD ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
