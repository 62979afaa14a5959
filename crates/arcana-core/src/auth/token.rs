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
    /// Not valid before (seconds since the epoch); Arcana's own tokens leave it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
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

/// Clock difference tolerated between the issuing and the checking host, in seconds.
pub const LEEWAY_SECS: i64 = 30;

/// Verifies signature, algorithm, issuer and the time claims: `exp` (past it, expired),
/// `nbf` (before it, not yet valid) and `iat` (required; never in the future), each with
/// [`LEEWAY_SECS`] of tolerance for clocks that differ a little.
pub fn verify(secret: &[u8], token: &str) -> Result<Claims, ApiError> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = LEEWAY_SECS as u64;
    validation.validate_nbf = true;
    validation.set_issuer(&[ISSUER]);
    validation.set_required_spec_claims(&["exp", "sub", "iss", "iat"]);
    let invalid = || {
        ApiError::unauthorized(
            "invalid_token",
            "The access token is malformed or not valid.",
        )
    };
    let claims =
        jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(secret), &validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => ApiError::unauthorized(
                    "token_expired",
                    "The access token has expired; log in again.",
                ),
                ErrorKind::ImmatureSignature => ApiError::unauthorized(
                    "token_not_yet_valid",
                    "The access token is not valid yet (nbf is in the future).",
                ),
                _ => invalid(),
            })?;
    if claims.iat > crate::time::now().unix_timestamp() + LEEWAY_SECS {
        return Err(invalid());
    }
    Ok(claims)
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
            nbf: None,
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
        let expired = issue(SECRET, &claims(-LEEWAY_SECS - 5)).unwrap();
        assert_eq!(verify(SECRET, &expired).unwrap_err().code, "token_expired");
        let forged = issue(b"another-secret-another-secret-xx", &claims(60)).unwrap();
        assert_eq!(verify(SECRET, &forged).unwrap_err().code, "invalid_token");
        assert_eq!(verify(SECRET, "a.b.c").unwrap_err().code, "invalid_token");
    }

    #[test]
    fn time_claims_are_checked_with_a_small_leeway() {
        let now = crate::time::now().unix_timestamp();
        // A few seconds of clock difference are tolerated.
        assert!(verify(SECRET, &issue(SECRET, &claims(-5)).unwrap()).is_ok());
        let mut future_iat = claims(600);
        future_iat.iat = now + 600;
        assert_eq!(
            verify(SECRET, &issue(SECRET, &future_iat).unwrap())
                .unwrap_err()
                .code,
            "invalid_token"
        );
        #[derive(serde::Serialize)]
        struct WithNbf {
            #[serde(flatten)]
            claims: Claims,
            nbf: i64,
        }
        let encode = |nbf: i64| {
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &WithNbf {
                    claims: claims(600),
                    nbf,
                },
                &EncodingKey::from_secret(SECRET),
            )
            .unwrap()
        };
        assert_eq!(
            verify(SECRET, &encode(now + 600)).unwrap_err().code,
            "token_not_yet_valid"
        );
        assert!(verify(SECRET, &encode(now - 1)).is_ok());
        let no_iat = serde_json::json!({"sub": "u1", "role": "user", "ver": 0, "exp": now + 60, "iss": ISSUER, "jti": "j"});
        let t = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &no_iat,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        assert!(verify(SECRET, &t).is_err());
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
