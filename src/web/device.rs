//! A readable name for the device behind a `User-Agent` ("Firefox on Linux"), for the account
//! page and `latch sessions list`. Only a short name from a fixed vocabulary is kept on the
//! session, never the header itself: a record stays small, holds no more than is shown, and a
//! hostile header cannot put its own text on the page.
//!
//! The order of the checks matters: Edge, Opera, Samsung Internet and Vivaldi also say
//! `Chrome/` and `Safari/`; Chrome says `Safari/`; Android says `Linux`; iPhones say
//! `like Mac OS X`.

/// "Browser on System", either half alone when the other is unknown, or `None` when the header
/// names neither (or is absent).
pub fn describe(user_agent: Option<&str>) -> Option<String> {
    let ua = user_agent?;
    match (browser(ua), system(ua)) {
        (Some(b), Some(s)) => Some(format!("{b} on {s}")),
        (Some(b), None) => Some(b.to_string()),
        (None, Some(s)) => Some(format!("A browser on {s}")),
        (None, None) => None,
    }
}

fn browser(ua: &str) -> Option<&'static str> {
    const BROWSERS: &[(&[&str], &str)] = &[
        (&["Edg/", "EdgA/", "EdgiOS/"], "Edge"),
        (&["OPR/", "Opera"], "Opera"),
        (&["SamsungBrowser/"], "Samsung Internet"),
        (&["Vivaldi/"], "Vivaldi"),
        (&["Firefox/", "FxiOS/"], "Firefox"),
        (&["HeadlessChrome/"], "Headless Chrome"),
        (&["Chromium/"], "Chromium"),
        (&["Chrome/", "CriOS/"], "Chrome"),
        (&["Version/"], "Safari"),
        (&["curl/"], "curl"),
        (&["Wget/"], "Wget"),
        (
            &[
                "python-requests/",
                "python-httpx/",
                "Python-urllib/",
                "aiohttp/",
            ],
            "Python",
        ),
        (&["Go-http-client/"], "Go"),
        (&["okhttp/"], "OkHttp"),
        (&["node-fetch", "undici", "axios/", "node"], "Node.js"),
    ];
    BROWSERS
        .iter()
        // `Version/` is Safari's only when it also says `Safari/`.
        .find(|(marks, name)| {
            marks.iter().any(|m| ua.contains(m)) && (*name != "Safari" || ua.contains("Safari/"))
        })
        .map(|(_, name)| *name)
}

fn system(ua: &str) -> Option<&'static str> {
    const SYSTEMS: &[(&str, &str)] = &[
        ("iPhone", "iPhone"),
        ("iPad", "iPad"),
        ("Android", "Android"),
        ("Windows", "Windows"),
        ("CrOS", "ChromeOS"),
        ("Macintosh", "macOS"),
        ("Mac OS X", "macOS"),
        ("Linux", "Linux"),
        ("FreeBSD", "FreeBSD"),
    ];
    SYSTEMS
        .iter()
        .find(|(mark, _)| ua.contains(mark))
        .map(|(_, name)| *name)
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[test]
    fn common_browsers_get_their_names() {
        for (ua, want) in [
            ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", "Chrome on Windows"),
            ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0", "Edge on Windows"),
            ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15", "Safari on macOS"),
            ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1", "Safari on iPhone"),
            ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1", "Chrome on iPhone"),
            ("Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", "Firefox on Linux"),
            ("Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36", "Samsung Internet on Android"),
            ("Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36", "Chrome on Android"),
            ("Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", "Chrome on ChromeOS"),
            ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 OPR/114.0.0.0", "Opera on Windows"),
            ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0.0.0 Safari/537.36", "Headless Chrome on Linux"),
            ("curl/8.5.0", "curl"),
            ("python-requests/2.32.3", "Python"),
            ("Mozilla/5.0 (X11; Linux x86_64) Something/1.0", "A browser on Linux"),
        ] {
            assert_eq!(describe(Some(ua)).as_deref(), Some(want), "{ua}");
        }
    }

    #[test]
    fn an_unknown_or_absent_agent_has_no_name_and_none_is_echoed() {
        assert_eq!(describe(None), None);
        assert_eq!(describe(Some("")), None);
        assert_eq!(describe(Some("<script>alert(1)</script>")), None);
        // A `Version/` without `Safari/` is not Safari.
        assert_eq!(describe(Some("SomeBot Version/2")), None);
    }
}
