# The image of `docker-compose.yml`: one image, two roles (`yoi gateway`, `yoi runtime`).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY runtime_worker ./runtime_worker
COPY gateway ./gateway
# The same install step CI uses (.ci/install).
RUN pip install --no-cache-dir .

RUN useradd --create-home --uid 10001 yoi
USER yoi
WORKDIR /home/yoi
EXPOSE 8000
CMD ["yoi", "gateway", "--host", "0.0.0.0", "--port", "8000"]
