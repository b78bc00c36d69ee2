# One image for the API and the worker (docker-compose.yml picks the command).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY api ./api
COPY config ./config
COPY edge ./edge
COPY domain ./domain
COPY workflows ./workflows
COPY activities ./activities
COPY schema ./schema
COPY web ./web
COPY cli.py devstack.py worker.py ./
RUN pip install . && useradd --system --uid 10001 oxinf
USER oxinf
ENV OXINF_ENV=production OXINF_API_HOST=0.0.0.0
EXPOSE 8000
CMD ["oxinf", "api"]
