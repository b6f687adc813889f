# TAC Hub image: one image, two roles in docker-compose.yml (`hub api`, `hub projector`);
# on its own it runs the embedded default (`hub serve`).
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# A fixed, unprivileged user that owns nothing but its data directory.
RUN groupadd --system --gid 10001 hub \
    && useradd --system --uid 10001 --gid hub --home-dir /var/lib/hub --shell /usr/sbin/nologin hub \
    && install -d -o hub -g hub -m 0750 /var/lib/hub

# All dependencies ship manylinux wheels for CPython 3.11: no compiler in the image.
# The build tree is removed in the same layer, so only the installed package remains.
WORKDIR /tmp/src
# hub/_contracts is a symlink to contracts/: the wheel carries the sharing policy and the
# contracts inside the package (a deployment may name another policy: HUB_CONSENT_POLICY).
COPY pyproject.toml README.md ./
COPY hub ./hub
COPY contracts ./contracts
RUN pip install --no-cache-dir . \
    && cd / && rm -rf /tmp/src

ENV HUB_DATA_DIR=/var/lib/hub/data \
    HUB_LOG_FORMAT=json

WORKDIR /var/lib/hub
USER hub:hub
EXPOSE 8000

# No HEALTHCHECK here: the same image runs `hub api`, `hub projector` (no HTTP port) and
# one-off commands, so each deployment states its own; docker-compose.yml checks
# GET /readyz for `hub api`.
ENTRYPOINT ["hub"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
