# One image for all four services; the command picks the service: python -m services.<name>
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml ./
COPY shared ./shared
COPY services ./services
COPY deploy/__init__.py ./deploy/__init__.py
COPY deploy/local ./deploy/local
RUN pip install . && useradd --uid 10001 --no-create-home attain
USER 10001
EXPOSE 8001 8002 8003 8004
CMD ["python", "-m", "services.ingest"]
