"""A small but real OpenID Connect provider for tests, served over HTTP by uvicorn.

Discovery, JWKS, an authorization endpoint that signs the configured person in at once,
and a token endpoint that checks the client secret, the redirect URI and the PKCE
verifier (S256) before issuing an RS256 ID token signed with joserfc. `mode` makes it
misbehave the ways a hostile or broken IdP (or a network attacker) would.
"""

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

CLIENT_ID = "sauti-hub"
CLIENT_SECRET = "provider-test-secret"


@dataclass
class Provider:
    issuer: str = ""
    claims: dict[str, Any] = field(default_factory=dict)
    # ok | expired | tampered | wrong_aud | wrong_nonce | wrong_iss | unknown_key | no_nonce
    mode: str = "ok"
    key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048, {"kid": "k1"}))
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    seen: list[dict[str, str]] = field(default_factory=list)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self.discovery),
                Route("/jwks", self.jwks),
                Route("/authorize", self.authorize),
                Route("/token", self.token, methods=["POST"]),
            ]
        )

    async def discovery(self, _request: Request) -> Response:
        return JSONResponse(
            {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "jwks_uri": f"{self.issuer}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic"],
                "scopes_supported": ["openid", "profile", "email"],
            }
        )

    async def jwks(self, _request: Request) -> Response:
        return JSONResponse({"keys": [self.key.as_dict(private=False)]})

    async def authorize(self, request: Request) -> Response:
        q = dict(request.query_params)
        self.seen.append(q)
        if q.get("client_id") != CLIENT_ID or q.get("response_type") != "code":
            return JSONResponse({"error": "unauthorized_client"}, status_code=400)
        if q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        code = secrets.token_urlsafe(24)
        self.codes[code] = q
        target = q["redirect_uri"] + "?" + urlencode({"code": code, "state": q.get("state", "")})
        return RedirectResponse(target, status_code=302)

    async def token(self, request: Request) -> Response:
        form = dict(await request.form())
        basic = request.headers.get("authorization", "")
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if basic != f"Basic {expected}":
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        grant = self.codes.pop(str(form.get("code")), None)  # single use
        if grant is None or form.get("redirect_uri") != grant["redirect_uri"]:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        digest = hashlib.sha256(str(form.get("code_verifier", "")).encode()).digest()
        challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        if challenge != grant["code_challenge"]:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        return JSONResponse(
            {
                "access_token": secrets.token_urlsafe(16),
                "token_type": "Bearer",
                "expires_in": 300,
                "id_token": self.id_token(nonce=grant.get("nonce", "")),
            }
        )

    def id_token(self, *, nonce: str) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + 300,
            "nonce": nonce,
            **self.claims,
        }
        if self.mode == "expired":
            claims.update(iat=now - 7200, exp=now - 3600)
        elif self.mode == "wrong_aud":
            claims["aud"] = "someone-else"
        elif self.mode == "wrong_nonce":
            claims["nonce"] = "not-the-nonce"
        elif self.mode == "no_nonce":
            del claims["nonce"]
        elif self.mode == "wrong_iss":
            claims["iss"] = "https://impostor.example"
        key = self.key
        if self.mode == "unknown_key":
            key = RSAKey.generate_key(2048, {"kid": "k1"})
        token = jwt.encode({"alg": "RS256", "kid": "k1"}, claims, key)
        if self.mode == "tampered":
            header, payload, signature = token.split(".")
            body = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
            body = body.replace(b'"sauti-analysts"', b'"sauti-admins"')
            payload = base64.urlsafe_b64encode(body).rstrip(b"=").decode()
            token = f"{header}.{payload}.{signature}"
        return token
