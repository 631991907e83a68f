"""Print the CA certificates of a PEM bundle that are not in the Mozilla set (certifi's).

make docker-test passes them as the Dockerfile's opt-in BUILD_CA_BUNDLE, so that pip inside
the build trusts what the host trusts (e.g. a TLS-intercepting proxy's CA). Only the
difference is passed: a whole system bundle (200+ KiB) is too big for one build argument
(the kernel caps one argument or environment string at 128 KiB).

    .venv/bin/python docker/extra_cas.py /etc/ssl/certs/ca-certificates.crt
"""

import re
import ssl
import sys

import certifi

PEM = re.compile(r'-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----', re.S)


def certificates(path):
    with open(path, encoding='ascii', errors='replace') as fh:
        return PEM.findall(fh.read())


def extra(bundle, reference):
    known = {ssl.PEM_cert_to_DER_cert(pem) for pem in certificates(reference)}
    return [pem for pem in certificates(bundle) if ssl.PEM_cert_to_DER_cert(pem) not in known]


if __name__ == '__main__':
    found = extra(sys.argv[1], certifi.where())
    if found:
        print('\n'.join(found))
