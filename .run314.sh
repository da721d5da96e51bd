cd /mnt/attach
export PYTHONPATH=/mnt/attach PYTHONDONTWRITEBYTECODE=1
timeout 600 /opt/attach-venv/bin/python -m pytest "$@"
