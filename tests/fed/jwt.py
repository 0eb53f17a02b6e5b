#!/usr/bin/python3
"""Test JWTs for the federation suites: mint them, and build a JWKS.

  jwt.py jwks KEY.pem:KID [KEY.pem:KID ...] > jwks.json
  jwt.py sign --key KEY.pem --kid KID --alg RS256|ES256 [--iss I] [--sub S]
         [--aud A] [--jti J | --no-jti] [--exp-in SECONDS] [--claim k=v]...

Keys are RSA or EC P-256 PEM private keys (made by the tests with openssl,
never checked in). The token server imports this file for its own
signatures and for verifying the assertions it receives, so both sides of
every test share one implementation of the JWS encoding.
"""
import argparse
import base64
import json
import secrets
import sys
import time

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

DEFAULT_AUD = "https://api.anthropic.com"
DEFAULT_ISS = "https://issuer.test"


def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64u_decode(text):
    """Decode base64url without padding; padding or other characters are
    refused (a JWS in compact form has none)."""
    if not isinstance(text, str) or "=" in text:
        raise ValueError("padding in a base64url part")
    alphabet = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    if not set(text) <= alphabet or len(text) % 4 == 1:
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def int_b64u(n, size=None):
    size = size or (n.bit_length() + 7) // 8
    return b64u(n.to_bytes(size, "big"))


def load_key(path):
    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)


def jwk(key, kid):
    pub = key.public_key()
    if isinstance(pub, rsa.RSAPublicKey):
        nums = pub.public_numbers()
        return {"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": int_b64u(nums.n), "e": int_b64u(nums.e)}
    if isinstance(pub, ec.EllipticCurvePublicKey) and pub.curve.name == "secp256r1":
        nums = pub.public_numbers()
        return {
            "kty": "EC",
            "kid": kid,
            "use": "sig",
            "alg": "ES256",
            "crv": "P-256",
            "x": int_b64u(nums.x, 32),
            "y": int_b64u(nums.y, 32),
        }
    raise ValueError("only RSA and EC P-256 keys")


def public_from_jwk(k):
    """The public key a JWK describes (RSA or EC P-256)."""
    if k.get("kty") == "RSA":
        n = int.from_bytes(b64u_decode(k["n"]), "big")
        e = int.from_bytes(b64u_decode(k["e"]), "big")
        return rsa.RSAPublicNumbers(e, n).public_key()
    if k.get("kty") == "EC" and k.get("crv") == "P-256":
        x = int.from_bytes(b64u_decode(k["x"]), "big")
        y = int.from_bytes(b64u_decode(k["y"]), "big")
        return ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
    raise ValueError("unsupported JWK")


def sign(key, kid, alg, claims, header_extra=None):
    """A compact JWS of `claims` signed with `key` (RS256: RSA PKCS#1 v1.5
    SHA-256; ES256: ECDSA P-256 SHA-256, signature as raw r||s)."""
    header = {"alg": alg, "typ": "JWT"}
    if kid is not None:
        header["kid"] = kid
    header.update(header_extra or {})
    signing_input = (
        b64u(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + b64u(json.dumps(claims, separators=(",", ":")).encode())
    ).encode()
    if alg == "RS256":
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("RS256 needs an RSA key")
        sig = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    elif alg == "ES256":
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("ES256 needs an EC P-256 key")
        r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    else:
        raise ValueError("alg must be RS256 or ES256")
    return signing_input.decode() + "." + b64u(sig)


def verify(token, jwks):
    """Check a compact JWS against `jwks` (a dict with "keys"). Returns
    (header, claims) or raises ValueError with a short reason that never
    quotes the token."""
    if not isinstance(token, str):
        raise ValueError("assertion is not a string")
    parts = token.split(".")
    if len(parts) != 3 or not all(parts):
        raise ValueError("assertion is not a compact JWS (three non-empty parts)")
    try:
        header = json.loads(b64u_decode(parts[0]))
        claims = json.loads(b64u_decode(parts[1]))
        sig = b64u_decode(parts[2])
    except ValueError:
        raise ValueError("assertion parts are not base64url JSON")
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise ValueError("assertion header or payload is not a JSON object")
    alg, kid = header.get("alg"), header.get("kid")
    if alg not in ("RS256", "ES256"):
        raise ValueError("alg %r not accepted" % (alg,))
    want_kty = "RSA" if alg == "RS256" else "EC"
    keys = [k for k in jwks.get("keys", []) if k.get("kid") == kid and k.get("kty") == want_kty]
    if not keys:
        raise ValueError("kid %r not in the JWKS for %s" % (kid, alg))
    pub = public_from_jwk(keys[0])
    signing_input = (parts[0] + "." + parts[1]).encode()
    try:
        if alg == "RS256":
            pub.verify(sig, signing_input, padding.PKCS1v15(), hashes.SHA256())
        else:
            if len(sig) != 64:
                raise ValueError("ES256 signature is not 64 bytes")
            der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
            pub.verify(der, signing_input, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise ValueError("signature invalid")
    return header, claims


def claims_for(iss=DEFAULT_ISS, sub="test-subject", aud=DEFAULT_AUD, jti=True, exp_in=600, extra=None):
    now = int(time.time())
    c = {"iss": iss, "sub": sub, "aud": aud, "iat": now, "nbf": now - 5, "exp": now + exp_in}
    if jti is True:
        c["jti"] = secrets.token_hex(16)
    elif jti:
        c["jti"] = jti
    c.update(extra or {})
    return c


def claim_value(text):
    """--claim k=v: v as JSON when it parses (numbers, lists, objects,
    true/false/null), else as a string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def main(argv):
    ap = argparse.ArgumentParser(prog="jwt.py")
    sub = ap.add_subparsers(dest="cmd", required=True)
    j = sub.add_parser("jwks")
    j.add_argument("keys", nargs="+", metavar="KEY.pem:KID")
    s = sub.add_parser("sign")
    s.add_argument("--key", required=True)
    s.add_argument("--kid")
    s.add_argument("--alg", default="RS256", choices=["RS256", "ES256"])
    s.add_argument("--iss", default=DEFAULT_ISS)
    s.add_argument("--sub", default="test-subject")
    s.add_argument("--aud", default=DEFAULT_AUD)
    g = s.add_mutually_exclusive_group()
    g.add_argument("--jti")
    g.add_argument("--no-jti", action="store_true")
    s.add_argument("--exp-in", type=int, default=600)
    s.add_argument("--claim", action="append", default=[], metavar="K=V")
    a = ap.parse_args(argv)
    if a.cmd == "jwks":
        out = []
        for spec in a.keys:
            path, sep, kid = spec.rpartition(":")
            if not sep or not path or not kid:
                ap.error("jwks arguments are KEY.pem:KID")
            out.append(jwk(load_key(path), kid))
        json.dump({"keys": out}, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    extra = {}
    for kv in a.claim:
        k, sep, v = kv.partition("=")
        if not sep or not k:
            ap.error("--claim takes K=V")
        extra[k] = claim_value(v)
    jti = False if a.no_jti else (a.jti if a.jti else True)
    claims = claims_for(a.iss, a.sub, a.aud, jti, a.exp_in, extra)
    print(sign(load_key(a.key), a.kid, a.alg, claims))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
