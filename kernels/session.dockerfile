# The session images' runtime settings, appended by kernels/build.sh to the final stage of
# kernels/notebook/Dockerfile and kernels/r/Dockerfile (the R image's final stage is FROM scratch and
# inherits none of the notebook image's). The image's own Dockerfile declares these ARGs with its values:
# BASE_DISTRO, PYTHON_VERSION, MIN_MEM, RUNTIME_TYPE, RUNTIME_PATH, SERVICE_PORTS, DESCRIPTION.
ENV PATH=/opt/backend.ai/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 \
    LC_ALL=C.UTF-8 \
    HOME=/home/work \
    SHELL=/bin/bash \
    PYTHONUNBUFFERED=1
# Backend.AI image-metadata convention (see kernels/README.md).
LABEL ai.backend.kernelspec="1" \
      ai.backend.features="batch query uid-match user-input" \
      ai.backend.base-distro="${BASE_DISTRO}" \
      ai.backend.resource.min.cpu="1" \
      ai.backend.resource.min.mem="${MIN_MEM}" \
      ai.backend.runtime-type="${RUNTIME_TYPE}" \
      ai.backend.runtime-path="${RUNTIME_PATH}" \
      ai.backend.service-ports="${SERVICE_PORTS}" \
      backendai-hub.python-version="${PYTHON_VERSION}" \
      org.opencontainers.image.description="${DESCRIPTION}"
EXPOSE 8888
USER 1000
WORKDIR /home/work
ENTRYPOINT ["tini", "--"]
CMD ["jupyterhub-singleuser"]
