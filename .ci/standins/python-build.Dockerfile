# Stand-in for python:<version>-bookworm (the builder stage): the slim stand-in
# plus a compiler and Python's headers, for packages without a wheel.
# The build machine's CA bundle is trusted by pip and npm here, because some
# CI networks re-sign TLS; only builder stages derive from this image, so the
# bundle never reaches a runtime image.
ARG BASE
FROM ${BASE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential python3-dev \
    && rm -rf /var/lib/apt/lists/*
COPY build-ca.pem /etc/ssl/build-ca.pem
ENV PIP_CERT=/etc/ssl/build-ca.pem
