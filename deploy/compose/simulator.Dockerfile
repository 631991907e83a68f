# The SpyCloud simulator and JWKS issuer, for local trials only (never in production).
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}
RUN python3 -m pip install --no-cache-dir "pyjwt[crypto]" trustme requests
COPY code/simulator /app/simulator
WORKDIR /app
CMD ["python3", "-m", "simulator", "--spycloud-port", "8081", "--jwks-port", "8443", "--state-dir", "/state", "--xdr-port", "8082"]
