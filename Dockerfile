# Minimal image for gemini-chunk-proxy; deploy/ and a hardened multi-stage build come later.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PROMETHEUS_MULTIPROC_DIR=/tmp/gemini-proxy-metrics

WORKDIR /srv
COPY requirements.txt constraints.txt ./
RUN pip install --no-cache-dir -r requirements.txt -c constraints.txt
COPY app/ app/
COPY wsgi.py gunicorn.conf.py ./

RUN useradd --system --no-create-home proxy
USER proxy

EXPOSE 1231
HEALTHCHECK --interval=15s --timeout=5s \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '1231') + '/health', timeout=3)"]
CMD ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
