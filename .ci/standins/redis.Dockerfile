# Stand-in for redis:<version>-alpine: Debian's redis-server, redis-cli and
# redis-sentinel (the official image has all three).
# Like the official image: /data is the working directory and a volume,
# owned by uid 999 gid 1000 (the official image's `redis` user).
ARG BASE
FROM ${BASE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends redis-server redis-tools redis-sentinel \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /data \
    && chown 999:1000 /data
VOLUME ["/data"]
WORKDIR /data
EXPOSE 6379
CMD ["redis-server"]
