# syntax=docker/dockerfile:1
# gemini-chunk-proxy: gunicorn with gevent workers. Build: docker build -t gemini-chunk-proxy .
# Run: see deploy/docker-compose.yml (nginx in front, Prometheus scraping, read-only root).
#
# One stage: every pinned dependency ships a binary wheel for Linux (x86_64 and arm64), so nothing
# is compiled and a builder stage with compilers would only add a second, larger base image.
# --only-binary=:all: turns a pin without a wheel into a build error naming it, never a compile.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PORT=1231 \
    PROMETHEUS_MULTIPROC_DIR=/tmp/gemini-proxy-metrics

# Fixed numeric ids, so volume permissions and Kubernetes' runAsNonRoot, runAsUser and fsGroup
# can rely on both. ("proxy" is taken: Debian has a system user of that name.)
RUN groupadd --system --gid 10001 gemini \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin gemini

WORKDIR /srv
COPY requirements.txt constraints.txt ./
RUN pip install --no-cache-dir --only-binary=:all: -r requirements.txt -c constraints.txt
# Owned by root and read-only to the runtime user, whatever the checkout's umask; no file is
# executable. (A glob, not the folder: --chmod would make the folder itself 0644, untraversable.)
COPY --chmod=0644 app/*.py app/
# The Gemini simulator (python -m simulator), so the image can be tried and tested without
# keys: the proxy never imports it, and the CMD does not start it.
COPY --chmod=0644 simulator/*.py simulator/
COPY --chmod=0644 wsgi.py gunicorn.conf.py ./

USER 10001:10001
EXPOSE 1231
# The slim image has no curl: python's urllib asks /health (liveness only: no Gemini call).
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ['PORT'] + '/health', timeout=3)"]
CMD ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
