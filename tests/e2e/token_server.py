#!/usr/bin/env python3
"""A registry token service (the Docker bearer-token flow) for the registry
test: answers GET /token?service=..&scope=.. with a JWT signed (RS256, by
`openssl dgst`) with KEY, carrying CERT in its x5c header, granting the
requested scopes to USER when the request has USER:PASSWORD as basic
credentials; 401 otherwise. Listens on 127.0.0.1, port 0; prints
"listening on 127.0.0.1:PORT".
Usage: token_server.py KEY CERT ISSUER SERVICE USER PASSWORD"""
import base64
import http.server
import json
import subprocess
import sys
import time
import urllib.parse

KEY, CERT, ISSUER, SERVICE, USER, PASSWORD = sys.argv[1:7]


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def der_of(cert_path):
    pem = open(cert_path).read()
    body = pem.split("-----BEGIN CERTIFICATE-----")[1].split("-----END CERTIFICATE-----")[0]
    return "".join(body.split())  # standard base64 of the DER, as x5c wants


def token(scopes):
    access = []
    for scope in scopes:
        parts = scope.split(":")
        if len(parts) == 3 and parts[0] == "repository":
            access.append({"type": "repository", "name": parts[1],
                           "actions": parts[2].split(",")})
    now = int(time.time())
    header = {"alg": "RS256", "typ": "JWT", "x5c": [der_of(CERT)]}
    claims = {"iss": ISSUER, "sub": USER, "aud": SERVICE, "exp": now + 300,
              "nbf": now - 10, "iat": now, "jti": str(now), "access": access}
    signing = (b64url(json.dumps(header).encode()) + "." +
               b64url(json.dumps(claims).encode())).encode()
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", KEY],
                         input=signing, capture_output=True, check=True).stdout
    return signing.decode() + "." + b64url(sig)


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        q = urllib.parse.parse_qs(url.query)
        want = "Basic " + base64.b64encode(("%s:%s" % (USER, PASSWORD)).encode()).decode()
        if url.path != "/token" or q.get("service") != [SERVICE] or \
                self.headers.get("Authorization") != want:
            self.send_response(401)
            self.end_headers()
            return
        body = json.dumps({"token": token(q.get("scope", []))}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print("listening on 127.0.0.1:%d" % server.server_address[1], flush=True)
server.serve_forever()
