# Mailer image: the `mailer` CLI with its SQL. Used by docker-compose.yml.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY mailer ./mailer
COPY orchestrator ./orchestrator
COPY tracking ./tracking
COPY sql ./sql
RUN pip install --no-cache-dir .
USER nobody
ENTRYPOINT ["mailer"]
CMD ["run"]
