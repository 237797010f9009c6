FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY registry ./registry
COPY policies ./policies
COPY scanner ./scanner
RUN pip install --no-cache-dir . && useradd --system --home /var/lib/berth berth \
    && mkdir -p /var/lib/berth && chown berth /var/lib/berth
USER berth
EXPOSE 5000
VOLUME ["/var/lib/berth"]
ENTRYPOINT ["berth"]
CMD ["serve", "--data", "/var/lib/berth", "--listen", "0.0.0.0:5000"]
