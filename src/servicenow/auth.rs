//! Credentials and OAuth tokens.
//!
//! Credentials come from environment variables the spec names (`servicenow.auth`); their values
//! live in [`Secret`], whose `Debug` and `Display` print `***`, so no log line or error can carry
//! one. OAuth access tokens are refreshed [`crate::servicenow::ClientOptions::refresh_margin`]
//! before they expire, and once more when a call answers 401.

use std::fmt;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::error::Error;
use crate::spec::model::ServiceNowAuth;

/// A credential value. Printing it shows `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a credential.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for the one place that puts it on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// How the client authenticates.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// HTTP basic authentication of an integration user.
    Basic {
        /// User name.
        user: String,
        /// Password.
        password: Secret,
    },
    /// OAuth 2.0 against `POST /oauth_token.do`.
    OAuth {
        /// Client id.
        client_id: String,
        /// Client secret.
        client_secret: Secret,
        /// Which grant obtains the first token.
        grant: Grant,
    },
}

/// The OAuth grant that obtains a token without a refresh token.
#[derive(Debug, Clone)]
pub enum Grant {
    /// `grant_type=password` for an integration user.
    Password {
        /// User name.
        user: String,
        /// Password.
        password: Secret,
    },
    /// `grant_type=client_credentials` (off by default on instances; needs an OAuth
    /// application user).
    ClientCredentials,
}

impl Credentials {
    /// Reads the credentials the spec names from `env` (the process environment in production,
    /// a map in tests). Exactly one method must be configured.
    pub fn from_spec(
        auth: &ServiceNowAuth,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, Error> {
        let read = |name: &str, what: &'static str| {
            env(name)
                .filter(|value| !value.is_empty())
                .ok_or_else(|| Error::MissingEnv { name: name.to_owned(), what })
        };
        match (&auth.basic, &auth.oauth) {
            (Some(basic), None) => Ok(Credentials::Basic {
                user: read(&basic.user_env, "user name")?,
                password: Secret::new(read(&basic.password_env, "password")?),
            }),
            (None, Some(oauth)) => {
                let grant = match (&oauth.user_env, &oauth.password_env) {
                    (Some(user), Some(password)) => Grant::Password {
                        user: read(user, "OAuth user name")?,
                        password: Secret::new(read(password, "OAuth password")?),
                    },
                    (None, None) => Grant::ClientCredentials,
                    _ => {
                        return Err(Error::Config(
                            "servicenow.auth.oauth names only one of userEnv and passwordEnv"
                                .to_owned(),
                        ));
                    }
                };
                Ok(Credentials::OAuth {
                    client_id: read(&oauth.client_id_env, "OAuth client id")?,
                    client_secret: Secret::new(read(&oauth.client_secret_env, "client secret")?),
                    grant,
                })
            }
            (Some(_), Some(_)) => {
                Err(Error::Config("servicenow.auth sets both basic and oauth; keep one".to_owned()))
            }
            (None, None) => Err(Error::Config("servicenow.auth sets no method".to_owned())),
        }
    }

    /// The form of the grant that obtains a fresh token (no refresh token at hand).
    pub(crate) fn grant_form(&self) -> Option<Vec<(&'static str, String)>> {
        let Credentials::OAuth { client_id, client_secret, grant } = self else { return None };
        let mut form = vec![
            ("client_id", client_id.clone()),
            ("client_secret", client_secret.expose().to_owned()),
        ];
        match grant {
            Grant::Password { user, password } => {
                form.push(("grant_type", "password".to_owned()));
                form.push(("username", user.clone()));
                form.push(("password", password.expose().to_owned()));
            }
            Grant::ClientCredentials => form.push(("grant_type", "client_credentials".to_owned())),
        }
        Some(form)
    }

    /// The form of a `refresh_token` grant.
    pub(crate) fn refresh_form(&self, refresh: &Secret) -> Option<Vec<(&'static str, String)>> {
        let Credentials::OAuth { client_id, client_secret, .. } = self else { return None };
        Some(vec![
            ("grant_type", "refresh_token".to_owned()),
            ("client_id", client_id.clone()),
            ("client_secret", client_secret.expose().to_owned()),
            ("refresh_token", refresh.expose().to_owned()),
        ])
    }
}

/// An OAuth access token and when it stops working.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub(crate) access: Secret,
    pub(crate) refresh: Option<Secret>,
    pub(crate) expires_at: Instant,
}

impl Token {
    /// True while the token is usable for at least `margin` more.
    pub(crate) fn is_fresh(&self, now: Instant, margin: Duration) -> bool {
        now + margin < self.expires_at
    }
}

/// The token endpoint's answer. `expires_in` is a number on instances, a string on some proxies.
#[derive(Deserialize)]
pub(crate) struct TokenResponse {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

impl TokenResponse {
    /// The token, expiring `expires_in` seconds after `now` (1799 s when not said).
    pub(crate) fn into_token(self, now: Instant) -> Token {
        let seconds = match &self.expires_in {
            Some(serde_json::Value::Number(n)) => n.as_u64(),
            Some(serde_json::Value::String(s)) => s.parse().ok(),
            _ => None,
        }
        .unwrap_or(1799);
        Token {
            access: Secret::new(self.access_token),
            refresh: self.refresh_token.filter(|r| !r.is_empty()).map(Secret::new),
            expires_at: now + Duration::from_secs(seconds),
        }
    }
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenResponse(***)")
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::spec::model::{BasicAuth, OAuth};

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn secret_never_prints() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret} {secret:?}"), "*** Secret(***)");
        let creds = Credentials::Basic { user: "u".into(), password: secret };
        assert!(!format!("{creds:?}").contains("hunter2"));
    }

    #[test]
    fn basic_from_spec_names_missing_variable() {
        let auth = ServiceNowAuth {
            basic: Some(BasicAuth { user_env: "SN_U".into(), password_env: "SN_P".into() }),
            oauth: None,
        };
        let err = Credentials::from_spec(&auth, &env(&[("SN_U", "bridge")])).unwrap_err();
        assert_eq!(err.to_string(), "environment variable SN_P (ServiceNow password) is not set");
        let ok = Credentials::from_spec(&auth, &env(&[("SN_U", "bridge"), ("SN_P", "pw")]));
        assert!(matches!(ok, Ok(Credentials::Basic { .. })));
    }

    #[test]
    fn oauth_without_user_is_client_credentials() {
        let auth = ServiceNowAuth {
            basic: None,
            oauth: Some(OAuth {
                client_id_env: "ID".into(),
                client_secret_env: "SECRET".into(),
                user_env: None,
                password_env: None,
            }),
        };
        let creds = Credentials::from_spec(&auth, &env(&[("ID", "c"), ("SECRET", "s")])).unwrap();
        let form = creds.grant_form().unwrap();
        assert!(form.contains(&("grant_type", "client_credentials".to_owned())));
    }

    #[test]
    fn token_is_refreshed_a_margin_before_expiry() {
        let now = Instant::now();
        let response: TokenResponse =
            serde_json::from_str(r#"{"access_token":"a","expires_in":"120"}"#).unwrap();
        let token = response.into_token(now);
        let margin = Duration::from_secs(60);
        assert!(token.is_fresh(now, margin));
        assert!(token.is_fresh(now + Duration::from_secs(59), margin));
        assert!(!token.is_fresh(now + Duration::from_secs(61), margin));
        assert!(token.refresh.is_none());
    }
}
