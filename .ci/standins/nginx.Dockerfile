# Stand-in for nginx:<version>-alpine: Debian's nginx laid out like the
# official image (nginx.conf, conf.d, uid 101, temp files under
# /var/cache/nginx, logs to stdout/stderr), with an entrypoint that renders
# /etc/nginx/templates/*.template the way the official image documents.
ARG BASE
FROM ${BASE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends nginx-light gettext-base \
    && rm -rf /var/lib/apt/lists/* /etc/nginx/sites-enabled /etc/nginx/conf.d/* \
    && groupadd --system --gid 101 nginx \
    && useradd --system --uid 101 --gid nginx --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin nginx \
    && mkdir -p /var/cache/nginx /etc/nginx/templates /docker-entrypoint.d \
    && ln -sf /dev/stdout /var/log/nginx/access.log \
    && ln -sf /dev/stderr /var/log/nginx/error.log
COPY nginx.conf /etc/nginx/nginx.conf
COPY nginx-entrypoint.sh /docker-entrypoint.sh
EXPOSE 80
STOPSIGNAL SIGQUIT
ENTRYPOINT ["/docker-entrypoint.sh"]
CMD ["nginx", "-g", "daemon off;"]
