# The kernel gateway for compose: Debian's jupyter-server + ipykernel with the data-science packages code
# usually wants, and the same TCP_NODELAY/IOPub settings `npm start` uses locally (docker/jupyter_server_config.py).
FROM debian:bookworm-slim
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3-jupyter-server python3-ipykernel python3-pandas python3-openpyxl python3-matplotlib python3-reportlab \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home --uid 1000 kernel && mkdir -p /data && chown kernel:kernel /data
COPY docker/jupyter_server_config.py /etc/jupyter/jupyter_server_config.py
# IPython's system-wide config dir: every kernel's settings, whoever runs it (packages/kernel-host/src/kernel-ipython.ts).
COPY docker/ipython_kernel_config.py /etc/ipython/ipython_kernel_config.py
USER kernel
EXPOSE 8888
# The command (with the token) is set in docker-compose.yml.
