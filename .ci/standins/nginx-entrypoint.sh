#!/bin/sh
# The official nginx image's template step, as its documentation describes it:
# each /etc/nginx/templates/NAME.template is written to /etc/nginx/conf.d/NAME
# by envsubst, substituting only the environment variables whose names match
# NGINX_ENVSUBST_FILTER (all of them when it is unset), so nginx's own $vars
# stay. Then the command runs.
set -eu

templates="${NGINX_ENVSUBST_TEMPLATE_DIR:-/etc/nginx/templates}"
suffix="${NGINX_ENVSUBST_TEMPLATE_SUFFIX:-.template}"
output="${NGINX_ENVSUBST_OUTPUT_DIR:-/etc/nginx/conf.d}"
filter="${NGINX_ENVSUBST_FILTER:-}"

if [ "${1:-}" = "nginx" ] && [ -d "$templates" ]; then
    names=$(env | sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\)=.*/\1/p' | grep -E -- "${filter:-.}" || true)
    defined=""
    for name in $names; do
        defined="$defined \${$name}"
    done
    find "$templates" -follow -type f -name "*$suffix" | while read -r template; do
        relative="${template#"$templates"/}"
        target="$output/${relative%"$suffix"}"
        mkdir -p "$(dirname "$target")"
        echo "$0: rendering $template to $target" >&2
        envsubst "$defined" < "$template" > "$target"
    done
fi

exec "$@"
