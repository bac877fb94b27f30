#!/usr/bin/env python3
"""A real SAML 2.0 identity provider for tracegate's tests: pysaml2's IdP (`saml2.server.Server`)
signing with the `xmlsec1` binary, driven non-interactively.

  saml-idp.py keygen DIR
      A fresh RSA-2048 key and self-signed certificate (DIR/idp.key, DIR/idp.crt, DIR/idp.der.b64).
  saml-idp.py response --key K --cert C --entity-id IDP --sp-metadata FILE [options]
      Prints one base64 SAMLResponse (HTTP-POST binding) for the SP described by FILE (tracegate's
      own /saml/metadata document).

The response is built by pysaml2 unsigned, adjusted as asked (validity, recipient, destination),
then signed by pysaml2 (xmlsec1) with RSA-SHA256/SHA-256 unless `--sha1`: pysaml2's default is SHA-1.
Tests mutate the signed output themselves to build attack documents.
"""

import warnings
warnings.filterwarnings("ignore")  # pysaml2 imports deprecated cryptography names

import argparse
import base64
import datetime as _dt
import os
import subprocess
import sys
import tempfile
import time as _time

from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.config import IdPConfig
from saml2.saml import NAME_FORMAT_URI, NAMEID_FORMAT_UNSPECIFIED, NameID
from saml2.server import Server
from saml2.sigver import pre_signature_part, signed_instance_factory
from saml2 import time_util, xmldsig

XMLSEC = "/usr/bin/xmlsec1"


def keygen(directory):
    os.makedirs(directory, exist_ok=True)
    key, crt = os.path.join(directory, "idp.key"), os.path.join(directory, "idp.crt")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt,
         "-days", "2", "-subj", "/CN=tracegate-test-idp"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    der = subprocess.run(["openssl", "x509", "-in", crt, "-outform", "DER"], check=True, capture_output=True).stdout
    with open(os.path.join(directory, "idp.der.b64"), "w") as f:
        f.write(base64.b64encode(der).decode())


class _ShiftedDatetime(_dt.datetime):
    """`datetime` whose `now()` is shifted, so pysaml2 stamps a response as of another time."""
    shift = 0

    @classmethod
    def now(cls, tz=None):
        return _dt.datetime.now(tz) + _dt.timedelta(seconds=cls.shift)


class _ShiftedTime:
    """The `time` module as pysaml2's time_util sees it, shifted by `shift` seconds."""

    def __init__(self, shift):
        self.shift = shift

    def gmtime(self, secs=None):
        return _time.gmtime((_time.time() if secs is None else secs) + self.shift)

    def __getattr__(self, name):
        return getattr(_time, name)


def shift_clock(seconds):
    _ShiftedDatetime.shift = seconds
    time_util.datetime = _ShiftedDatetime
    time_util.time = _ShiftedTime(seconds)


def response(a):
    if a.shift:
        shift_clock(a.shift)
    conf = IdPConfig()
    conf.load({
        "entityid": a.entity_id,
        "service": {"idp": {
            "endpoints": {"single_sign_on_service": [(a.entity_id + "/sso", BINDING_HTTP_REDIRECT)]},
            "policy": {"default": {"lifetime": {"minutes": a.lifetime_minutes},
                                   "attribute_restrictions": None, "name_form": NAME_FORMAT_URI}},
            "name_id_format": [NAMEID_FORMAT_UNSPECIFIED],
            "want_authn_requests_signed": False,
        }},
        "key_file": a.key, "cert_file": a.cert,
        "metadata": {"local": [a.sp_metadata]},
        "xmlsec_binary": XMLSEC,
        "allow_unknown_attributes": True,
    })
    idp = Server(config=conf)
    sp_entity = a.sp_entity_id
    acs = a.acs_url
    if a.authn_request:
        # SP-initiated: read the SP's AuthnRequest (HTTP-Redirect binding) as the IdP would.
        req = idp.parse_authn_request(a.authn_request, BINDING_HTTP_REDIRECT).message
        a.in_response_to = req.id
        if req.assertion_consumer_service_url and req.assertion_consumer_service_url != acs:
            sys.exit(f"the AuthnRequest asks for ACS {req.assertion_consumer_service_url}, not {acs}")
    identity = {a.groups_attribute: [g for g in a.groups.split(",") if g]} if a.groups else {}
    name_id = NameID(format=NAMEID_FORMAT_UNSPECIFIED, text=a.subject)
    resp = idp.create_authn_response(
        identity, a.in_response_to, a.destination or acs, sp_entity, name_id=name_id,
        authn={"class_ref": "urn:oasis:names:tc:SAML:2.0:ac:classes:Password"},
        sign_response=False, sign_assertion=False)
    if isinstance(resp, str):
        from saml2.samlp import response_from_string
        resp = response_from_string(resp)
    assertion = resp.assertion[0] if isinstance(resp.assertion, list) else resp.assertion
    if a.recipient:
        for sc in assertion.subject.subject_confirmation:
            sc.subject_confirmation_data.recipient = a.recipient
    if a.audience:
        assertion.conditions.audience_restriction[0].audience[0].text = a.audience
    sign_alg = xmldsig.SIG_RSA_SHA1 if a.sha1 else xmldsig.SIG_RSA_SHA256
    digest_alg = xmldsig.DIGEST_SHA1 if a.sha1 else xmldsig.DIGEST_SHA256
    to_sign = []
    if a.sign_assertion:
        assertion.signature = pre_signature_part(assertion.id, idp.sec.my_cert, 1, sign_alg=sign_alg,
                                                 digest_alg=digest_alg)
        to_sign.append((assertion.c_tag, assertion.id))
    if a.sign_response:
        resp.signature = pre_signature_part(resp.id, idp.sec.my_cert, 1, sign_alg=sign_alg, digest_alg=digest_alg)
        to_sign.append((resp.c_tag, resp.id))
    if isinstance(resp.assertion, list):
        resp.assertion = [assertion]
    xml = signed_instance_factory(resp, idp.sec, to_sign) if to_sign else resp.to_string()
    if isinstance(xml, str):
        xml = xml.encode()
    sys.stdout.write(base64.b64encode(xml).decode())


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("keygen")
    k.add_argument("dir")
    r = sub.add_parser("response")
    r.add_argument("--key", required=True)
    r.add_argument("--cert", required=True)
    r.add_argument("--entity-id", required=True)
    r.add_argument("--sp-metadata", required=True)
    r.add_argument("--sp-entity-id", required=True)
    r.add_argument("--acs-url", required=True)
    r.add_argument("--subject", required=True)
    r.add_argument("--groups", default="", help="comma-separated values of the groups attribute")
    r.add_argument("--groups-attribute", default="groups")
    r.add_argument("--in-response-to", default=None)
    r.add_argument("--authn-request", default=None,
                   help="the SAMLRequest query value of the SP's redirect; the response answers it")
    r.add_argument("--destination", default=None, help="Response Destination (default: the ACS URL)")
    r.add_argument("--recipient", default=None, help="SubjectConfirmationData Recipient (default: the ACS URL)")
    r.add_argument("--audience", default=None, help="AudienceRestriction (default: the SP entity id)")
    r.add_argument("--shift", type=int, default=0, help="stamp the response as of now + SHIFT seconds")
    r.add_argument("--lifetime-minutes", type=int, default=5)
    r.add_argument("--sign-response", action="store_true")
    r.add_argument("--sign-assertion", action="store_true")
    r.add_argument("--sha1", action="store_true", help="RSA-SHA1 / SHA-1 (pysaml2's own default)")
    a = p.parse_args()
    if a.cmd == "keygen":
        keygen(a.dir)
    else:
        response(a)


if __name__ == "__main__":
    main()
