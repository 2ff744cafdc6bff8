# tinhieu worker image: faust -A streams.app worker
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

RUN apt-get update && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

COPY setup.cfg pyproject.toml constraints.txt README.md ./
COPY tinhieu ./tinhieu
COPY streams ./streams
COPY agents ./agents
COPY tables ./tables
COPY models ./models
RUN pip install --no-cache-dir -c constraints.txt .

RUN useradd --create-home tinhieu && mkdir -p /data && chown tinhieu /data
USER tinhieu
ENV TINHIEU_DATA_DIR=/data TINHIEU_WEB_HOST=0.0.0.0
VOLUME ["/data"]
EXPOSE 6066
CMD ["faust", "-A", "streams.app", "worker", "-l", "info"]
