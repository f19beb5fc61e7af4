//! A browser stand-in: keeps cookies per host and path like a browser, sends them, and
//! never follows a redirect by itself, so tests check every hop.
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Response, StatusCode};
use std::sync::Mutex;
use url::Url;

#[derive(Debug, Clone)]
pub struct StoredCookie {
    pub host: String,
    pub path: String,
    pub name: String,
    pub value: String,
    /// The whole Set-Cookie line, for attribute checks.
    pub raw: String,
}

/// A plain HTTP client (no redirects followed, 30 s timeout), with the process's crypto
/// provider set.
pub fn http_client() -> reqwest::Client {
    client_builder().build().unwrap()
}

pub fn client_builder() -> reqwest::ClientBuilder {
    latch::install_crypto_provider();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(30))
}

pub struct Browser {
    pub client: reqwest::Client,
    jar: Mutex<Vec<StoredCookie>>,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

impl Browser {
    pub fn new() -> Self {
        Browser {
            client: http_client(),
            jar: Mutex::new(Vec::new()),
        }
    }

    /// A browser that sends `user_agent` on every request.
    pub fn with_user_agent(user_agent: &str) -> Self {
        Self::with_client(client_builder().user_agent(user_agent))
    }

    /// A browser whose client is built from `builder` (redirects off, 30 s timeout, as
    /// [`http_client`]) plus whatever the caller set on it.
    pub fn with_client(builder: reqwest::ClientBuilder) -> Self {
        Browser {
            client: builder.build().unwrap(),
            jar: Mutex::new(Vec::new()),
        }
    }

    fn cookie_header(&self, url: &Url) -> Option<String> {
        let host = url.host_str()?.to_string();
        let jar = self.jar.lock().unwrap();
        let pairs: Vec<String> = jar
            .iter()
            .filter(|c| c.host == host && url.path().starts_with(&c.path))
            .map(|c| format!("{}={}", c.name, c.value))
            .collect();
        (!pairs.is_empty()).then(|| pairs.join("; "))
    }

    fn remember(&self, url: &Url, response: &Response) {
        let host = url.host_str().unwrap_or_default().to_string();
        let mut jar = self.jar.lock().unwrap();
        for value in response.headers().get_all(SET_COOKIE) {
            let raw = value.to_str().unwrap().to_string();
            let mut parts = raw.split(';');
            let (name, val) = parts.next().unwrap().trim().split_once('=').unwrap();
            let mut path = {
                let p = url.path();
                p[..p.rfind('/').unwrap_or(0).max(1)].to_string()
            };
            let mut expired = false;
            for attr in parts {
                let attr = attr.trim();
                let lower = attr.to_ascii_lowercase();
                if let Some(p) = lower.strip_prefix("path=") {
                    path = attr[5..5 + p.len()].to_string();
                }
                if lower == "max-age=0" {
                    expired = true;
                }
            }
            jar.retain(|c| !(c.host == host && c.name == name && c.path == path));
            if !expired && !val.is_empty() {
                jar.push(StoredCookie {
                    host: host.clone(),
                    path,
                    name: name.to_string(),
                    value: val.to_string(),
                    raw,
                });
            }
        }
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Response {
        let mut request = request.build().unwrap();
        let url = request.url().clone();
        if let Some(cookies) = self.cookie_header(&url) {
            request
                .headers_mut()
                .insert(COOKIE, cookies.parse().unwrap());
        }
        let response = self.client.execute(request).await.unwrap();
        self.remember(&url, &response);
        response
    }

    pub async fn get(&self, url: &str) -> Response {
        self.send(self.client.get(url)).await
    }

    /// `GET url`, its body as JSON.
    pub async fn json(&self, url: &str) -> serde_json::Value {
        self.get(url).await.json().await.unwrap()
    }

    /// `POST url` with no body (`/token`, `/refresh`, `/revoke`).
    pub async fn post(&self, url: &str) -> Response {
        self.send(self.client.post(url)).await
    }

    /// `GET url` with one more header.
    pub async fn get_with(&self, url: &str, (name, value): (&str, &str)) -> Response {
        self.send(self.client.get(url).header(name, value)).await
    }

    /// `POST url` with `form` and one more header (`X-Auth-Return-Redirect: 1`, say).
    pub async fn post_form_with(
        &self,
        url: &str,
        (name, value): (&str, &str),
        form: &[(&str, &str)],
    ) -> Response {
        self.send(self.client.post(url).header(name, value).form(form))
            .await
    }

    pub async fn post_form(&self, url: &str, form: &[(&str, &str)]) -> Response {
        self.send(self.client.post(url).form(form)).await
    }

    /// A POST from another site (a provider's `form_post` page): a browser sends only the
    /// cookies set with `SameSite=None`, never the Lax or Strict ones.
    pub async fn post_form_cross_site(&self, url: &str, form: &[(&str, &str)]) -> Response {
        let mut request = self.client.post(url).form(form).build().unwrap();
        let parsed = request.url().clone();
        let host = parsed.host_str().unwrap_or_default().to_string();
        let pairs: Vec<String> = self
            .jar
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.host == host && parsed.path().starts_with(&c.path))
            .filter(|c| c.raw.to_ascii_lowercase().contains("samesite=none"))
            .map(|c| format!("{}={}", c.name, c.value))
            .collect();
        if !pairs.is_empty() {
            request
                .headers_mut()
                .insert(COOKIE, pairs.join("; ").parse().unwrap());
        }
        let response = self.client.execute(request).await.unwrap();
        self.remember(&parsed, &response);
        response
    }

    pub fn cookie(&self, name: &str) -> Option<StoredCookie> {
        self.jar
            .lock()
            .unwrap()
            .iter()
            .find(|c| c.name == name)
            .cloned()
    }

    pub fn forget(&self, name: &str) {
        self.jar.lock().unwrap().retain(|c| c.name != name);
    }

    pub fn set_cookie(&self, host: &str, name: &str, value: &str) {
        let mut jar = self.jar.lock().unwrap();
        jar.retain(|c| c.name != name);
        jar.push(StoredCookie {
            host: host.into(),
            path: "/".into(),
            name: name.into(),
            value: value.into(),
            raw: String::new(),
        });
    }
}

/// The `Location` of a redirect, resolved against the request URL, asserting the status.
pub fn location(response: &Response, status: StatusCode) -> String {
    assert_eq!(
        response.status(),
        status,
        "unexpected status for {}",
        response.url()
    );
    let raw = response
        .headers()
        .get(LOCATION)
        .unwrap_or_else(|| panic!("no Location from {}", response.url()))
        .to_str()
        .unwrap();
    response.url().join(raw).unwrap().to_string()
}

/// The Set-Cookie line for `name` in this response.
pub fn set_cookie_line(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|v| v.starts_with(&format!("{name}=")))
}

/// The value of a Set-Cookie line (`name=value; …`).
pub fn cookie_value(line: &str) -> String {
    let pair = line.split(';').next().unwrap();
    pair.split_once('=').unwrap().1.to_string()
}

/// A query parameter of a URL.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}
