//! Access tokens: JWTs signed with HMAC-SHA256 under the `jwt_secret` variable.
//! Claims carry the user id, role and `token_version`; the version lets an admin
//! revoke every token of a user without a token blocklist.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// The issuer written into and required in every token.
pub const ISSUER: &str = "arcana";

/// Claims of an Arcana access token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// User id.
    pub sub: String,
    /// Role at issue time (informational; permissions are re-read from the database).
    pub role: String,
    /// The user's token version at issue time.
    pub ver: i64,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Expires at (seconds since the epoch).
    pub exp: i64,
    /// Issuer.
    pub iss: String,
    /// Unique token id.
    pub jti: String,
}

/// Signs claims.
pub fn issue(secret: &[u8], claims: &Claims) -> Result<String, ApiError> {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .map_err(ApiError::internal)
}

/// Verifies signature, algorithm, issuer and expiry (no leeway).
pub fn verify(secret: &[u8], token: &str) -> Result<Claims, ApiError> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 0;
    validation.set_issuer(&[ISSUER]);
    validation.set_required_spec_claims(&["exp", "sub", "iss"]);
    jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(secret), &validation)
        .map(|data| data.claims)
        .map_err(|e| match e.kind() {
            ErrorKind::ExpiredSignature => ApiError::unauthorized(
                "token_expired",
                "The access token has expired; log in again.",
            ),
            _ => ApiError::unauthorized(
                "invalid_token",
                "The access token is malformed or not valid.",
            ),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn claims(exp_offset: i64) -> Claims {
        let now = crate::time::now().unix_timestamp();
        Claims {
            sub: "u1".into(),
            role: "user".into(),
            ver: 0,
            iat: now,
            exp: now + exp_offset,
            iss: ISSUER.into(),
            jti: "j".into(),
        }
    }

    #[test]
    fn issued_token_verifies() {
        let t = issue(SECRET, &claims(60)).unwrap();
        assert_eq!(verify(SECRET, &t).unwrap().sub, "u1");
    }

    #[test]
    fn expired_forged_and_garbage_tokens_fail() {
        let expired = issue(SECRET, &claims(-5)).unwrap();
        assert_eq!(verify(SECRET, &expired).unwrap_err().code, "token_expired");
        let forged = issue(b"another-secret-another-secret-xx", &claims(60)).unwrap();
        assert_eq!(verify(SECRET, &forged).unwrap_err().code, "invalid_token");
        assert_eq!(verify(SECRET, "a.b.c").unwrap_err().code, "invalid_token");
    }

    #[test]
    fn alg_none_is_refused() {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = b64.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let body = b64.encode(serde_json::to_vec(&claims(60)).unwrap());
        assert!(verify(SECRET, &format!("{header}.{body}.")).is_err());
    }
}
