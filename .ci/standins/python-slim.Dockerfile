# Stand-in for python:<version>-slim-bookworm: Debian's own Python 3.11 with
# venv. `python` is on PATH as in the official image (python-is-python3).
ARG BASE
FROM ${BASE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates python3 python3-venv python-is-python3 \
    && rm -rf /var/lib/apt/lists/*
CMD ["python3"]
