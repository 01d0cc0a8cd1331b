# The image of `docker-compose.yml`: one image, two roles (`yoi gateway`, `yoi runtime`).
# Stage 1 builds the wheel with the command CI builds it with (tests/packaging); stage 2 installs
# that wheel, at the versions CI tested (constraints.txt), so the image holds what CI ran.
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY runtime_worker ./runtime_worker
COPY gateway ./gateway
RUN pip wheel --no-deps --wheel-dir /dist .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY constraints.txt /tmp/constraints.txt
COPY --from=build /dist /tmp/dist
RUN pip install --no-cache-dir -c /tmp/constraints.txt /tmp/dist/yoi_fleet-*.whl \
    && rm -rf /tmp/dist /tmp/constraints.txt

RUN useradd --create-home --uid 10001 yoi
USER yoi
WORKDIR /home/yoi
# The gateway's data directory (the Companion's SQLite store), made here so that a volume
# mounted on it (docker-compose.yml) starts owned by `yoi`.
ENV YOI_DATA_DIR=/home/yoi/data
RUN mkdir -p /home/yoi/data
EXPOSE 8000
CMD ["yoi", "gateway", "--host", "0.0.0.0", "--port", "8000"]
