//! etcd's URL lists: `http://host:port`, `https://host:port`, and unix
//! sockets `unix://NAME` and `unixs://NAME` (TLS), where NAME is the
//! socket file (etcd's `unix://localhost:2379` is the file `localhost:2379`).

use url::Url;

use super::ConfigError;

/// Whether the URL is served or dialed with TLS.
pub fn is_tls(url: &Url) -> bool {
    matches!(url.scheme(), "https" | "unixs")
}

/// Splits a comma-separated URL list and checks each is one etcd accepts.
pub fn parse_urls(flag: &'static str, list: &str) -> Result<Vec<Url>, ConfigError> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            let bad = |reason: &str| ConfigError::BadUrl {
                flag,
                url: s.to_string(),
                reason: reason.into(),
            };
            let url = Url::parse(s).map_err(|e| bad(&e.to_string()))?;
            match url.scheme() {
                "http" | "https" => {
                    if url.host_str().is_none() || url.port_or_known_default().is_none() {
                        return Err(bad("URL must name a host and a port"));
                    }
                }
                "unix" | "unixs" => {
                    if url
                        .as_str()
                        .split_once("://")
                        .is_none_or(|(_, rest)| rest.trim_end_matches('/').is_empty())
                    {
                        return Err(bad("a unix URL must name its socket (unix://NAME)"));
                    }
                }
                _ => return Err(bad("URL scheme must be http, https, unix or unixs")),
            }
            Ok(url)
        })
        .collect()
}
