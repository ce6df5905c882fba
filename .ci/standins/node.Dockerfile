# Stand-in for node:<version>-bookworm-slim: Debian's Node.js and npm.
# The build machine's CA bundle: see python-build.Dockerfile.
ARG BASE
FROM ${BASE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends nodejs npm \
    && rm -rf /var/lib/apt/lists/*
COPY build-ca.pem /etc/ssl/build-ca.pem
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/build-ca.pem \
    NPM_CONFIG_CAFILE=/etc/ssl/build-ca.pem
CMD ["node"]
